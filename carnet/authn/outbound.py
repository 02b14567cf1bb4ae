"""Outbound HTTPS clients (the operator's OpenID Connect issuer, backend services' JWKS URLs).

Why one TLS context: building it loads the CA bundle (about 45 ms); httpx builds one per client,
and the services build two clients each time they are built. The context is shared, read-only
after creation, and verifies certificates exactly as httpx's default does.
"""

from __future__ import annotations

import ssl
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
