"""Flash messages for POST-redirect-GET: the POST answers 303 with a message key in a one-shot
cookie; the next page shows the message and clears the cookie.

The cookie holds a key, never text: only messages registered here can be shown, so a forged
cookie can at most show one of Carnet's own sentences. Register yours where they are used::

    SAVED = register_flash("profile.saved", N_("Votre profil est enregistré."))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.responses import RedirectResponse

from carnet.web.i18n import N_

FLASH_COOKIE = "carnet_flash"
Level = Literal["success", "info", "error"]


@dataclass(frozen=True)
class Flash:
    key: str
    message: str  # the French text, the message id of its translations
    level: Level


_REGISTERED: dict[str, Flash] = {}


def register_flash(key: str, message: str, level: Level = "success") -> Flash:
    """Declare a message a redirect may carry (once, at import); the key is what travels."""
    existing = _REGISTERED.get(key)
    if existing is not None and existing.message != message:
        raise ValueError(f"flash key {key!r} registered twice with different texts")
    flash = Flash(key, message, level)
    _REGISTERED[key] = flash
    return flash


SIGNED_OUT = register_flash("signed-out", N_("Vous êtes déconnecté(e)."), "info")
LANGUAGE_CHANGED = register_flash("language", N_("La langue de Carnet a changé."), "info")


def redirect(url: str, flash: Flash | None = None) -> RedirectResponse:
    """303 See Other to ``url`` (a local path), with ``flash`` shown on the page it leads to."""
    if not url.startswith("/") or url.startswith("//"):
        raise ValueError("redirects of the portal stay on the portal")
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        response.set_cookie(FLASH_COOKIE, flash.key, path="/", httponly=True, samesite="strict")
    return response


def pending_flash(request: Request) -> Flash | None:
    """The message the previous POST left for this page, if it is one of ours."""
    key = request.cookies.get(FLASH_COOKIE)
    return None if key is None else _REGISTERED.get(key)


def local_path(candidate: str | None, default: str = "/") -> str:
    """``candidate`` if it is a path on this site (a "next" parameter), else ``default``: never
    an open redirect to another host."""
    if (
        not candidate
        or not candidate.startswith("/")
        or candidate.startswith("//")
        or "\\" in candidate
        or any(ord(c) < 32 for c in candidate)
    ):
        return default
    return candidate
