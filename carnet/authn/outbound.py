"""Outbound HTTPS clients (the operator's OpenID Connect issuer, backend services' JWKS URLs).

Why one TLS context: building it loads the CA bundle (about 45 ms, far more on a loaded machine);
httpx builds one per client, and the services build two clients each time they are built. The
context is shared, read-only after creation, and verifies certificates exactly as httpx's default
does.

Why lazy clients: every CLI command, server start and test builds the services, and most never
call out; the client (and the context, the first time in a process) is made on the first request.
"""

from __future__ import annotations

import ssl
import threading
from functools import cache
from typing import Any

import httpx2 as httpx


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once per process."""
    return httpx.create_ssl_context()


def https_client(**options: Any) -> httpx.Client:
    """An httpx client verifying TLS with the shared context (``options`` as for httpx.Client)."""
    return httpx.Client(verify=tls_context(), **options)


class LazyHttpsClient:
    """An :func:`https_client` made on its first request (``options`` as for httpx.Client)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._client: httpx.Client | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._closed:
                raise RuntimeError("this HTTPS client is closed")
            if self._client is None:
                self._client = https_client(**self._options)
            return self._client

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.client.get(url, **options)

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.client.post(url, **options)

    @property
    def is_closed(self) -> bool:
        """Whether ``close`` ran (as ``httpx.Client.is_closed``)."""
        return self._closed

    def close(self) -> None:
        """Close the client if one was made; no request is sent after this."""
        with self._lock:
            self._closed = True
            if self._client is not None:
                self._client.close()
