"""Client key sets published at a URL (SMART Backend Services: a JWKS URL registered instead of a
file), fetched only from hosts the operator declared (setting ``jwks_url_hosts``) and cached
briefly, so a client can rotate its keys without the operator re-registering it.

The HTTP client takes an injectable transport: tests answer from a fake, never the network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import orjson
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from carnet.authn.outbound import LazyHttpsClient

CACHE_SECONDS = 120.0  # short: a key the client withdraws stops working within two minutes
REFETCH_AFTER_SECONDS = 10.0  # an unknown kid fetches again, at most this often (key rotation)
MAX_JWKS_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 5.0


class KeySetError(ValueError):
    """A JWKS URL that may not be used, or a key set that could not be fetched or read."""


def check_jwks_url(url: str, allowed_hosts: tuple[str, ...]) -> str:
    """``url`` if it is an https URL on a declared host; KeySetError (naming the rule) otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.fragment:
        raise KeySetError("a JWKS URL is an https URL without credentials or fragment")
    if parts.hostname.lower() not in allowed_hosts:
        raise KeySetError("the JWKS URL's host is not declared in the setting jwks_url_hosts")
    return url


def check_public_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    """A client's key set as we keep it: public keys only, each with a kid, parseable."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise KeySetError("a JWKS holds a non-empty list of keys")
    for key in keys:
        if not isinstance(key, dict) or any(p in key for p in ("d", "p", "q", "k")):
            raise KeySetError("a client's JWKS holds public keys only")
        if not key.get("kid"):
            raise KeySetError("every key of a client's JWKS has a kid")
    try:
        KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError):
        raise KeySetError("the JWKS does not parse") from None
    return {"keys": keys}


@dataclass
class _Cached:
    jwks: dict[str, Any]
    fetched_at: float


class KeySetFetcher:
    """Fetches and caches clients' key sets from their registered JWKS URLs."""

    def __init__(
        self,
        allowed_hosts: tuple[str, ...],
        *,
        transport: httpx.BaseTransport | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.http = LazyHttpsClient(
            transport=transport, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False
        )
        self.now = now
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def key_set(self, url: str, *, wanted_kid: str | None = None) -> dict[str, Any]:
        """The JWKS at ``url``: cached for ``CACHE_SECONDS``, fetched again sooner (at most every
        ``REFETCH_AFTER_SECONDS``) when ``wanted_kid`` is not in it, as after a key rotation."""
        check_jwks_url(url, self.allowed_hosts)  # the setting may have changed since registration
        moment = self.now()
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            age = moment - cached.fetched_at
            known = wanted_kid is None or any(
                k.get("kid") == wanted_kid for k in cached.jwks["keys"]
            )
            if age < CACHE_SECONDS and (known or age < REFETCH_AFTER_SECONDS):
                return cached.jwks
        jwks = self._fetch(url)
        with self._lock:
            self._cache[url] = _Cached(jwks, moment)
        return jwks

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeySetError(f"the JWKS URL could not be fetched ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise KeySetError(f"the JWKS URL answered {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise KeySetError("the JWKS at the URL is too large")
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise KeySetError("the JWKS at the URL is not JSON") from None
        if not isinstance(document, dict):
            raise KeySetError("the JWKS at the URL is not a JSON object")
        return check_public_jwks(document)

    def close(self) -> None:
        self.http.close()
