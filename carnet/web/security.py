"""The pages' security headers and their CSRF tokens.

Every page is served with a strict Content-Security-Policy: scripts and styles only from Carnet's
own static files (an inline script only by its hash, listed in ``INLINE_SCRIPT_HASHES``), no
framing, forms posted only to Carnet. The response-wide ``no-store`` and ``nosniff`` come from
carnet/web_safety.py and are repeated here for pages served by anything else.

CSRF: a signed-in page's forms carry the session's own CSRF token (the one
carnet/authn/sessions.py issued with the session, readable in the ``carnet_csrf`` cookie) in the
hidden field ``csrf_token`` (scripts send it in ``X-CSRF-Token``); the page caller checks it on
every POST (carnet/web/caller.py). A form shown before sign-in (login, activation, forgotten
password) uses a double-submit token: a random HttpOnly, SameSite=Strict cookie and the same value
in the field, plus the Origin check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

from carnet.settings import Settings

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_CSRF_COOKIE = "carnet_csrf"  # set with the session by carnet/authn/api.py
FORM_COOKIE = "carnet_form"  # the double-submit token of forms shown before sign-in
_MAX_TOKEN_LEN = 128

# sha256 hashes of the inline scripts pages may carry ('sha256-...'); none yet: scripts are files.
INLINE_SCRIPT_HASHES: tuple[str, ...] = ()


def script_hash(source: str) -> str:
    """The CSP source expression allowing exactly this inline script."""
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(*, frame_ancestors: str = "'none'") -> str:
    scripts = " ".join(("'self'", *INLINE_SCRIPT_HASHES))
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        f"object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


def page_headers(*, frame_ancestors: str = "'none'") -> dict[str, str]:
    """Headers of every HTML page (``frame_ancestors="'self'"`` only for a document shown in the
    portal's own sandboxed frame)."""
    return {
        "Content-Security-Policy": content_security_policy(frame_ancestors=frame_ancestors),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY" if frame_ancestors == "'none'" else "SAMEORIGIN",
        "Referrer-Policy": "same-origin",
    }


def usable_token(value: str | None) -> str | None:
    if not value or len(value) > _MAX_TOKEN_LEN:
        return None
    return value


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, offered: str | None) -> bool:
    expected, offered = usable_token(expected), usable_token(offered)
    if expected is None or offered is None:
        return False
    return hmac.compare_digest(expected.encode(), offered.encode())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_origin(request: Request, settings: Settings) -> bool:
    """A browser names the site a form came from; another site's is refused (the server's public
    addresses, never the Host header)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    allowed = {_origin(settings.public_base_url), _origin(settings.issuer_url)}
    return origin.lower() not in allowed


def secure_cookies(settings: Settings) -> bool:
    return settings.issuer_url.startswith("https")
