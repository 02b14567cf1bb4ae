"""The outbound HTTPS clients (carnet/authn/outbound.py): their TLS context is built when a client
first sends, not when the services are built (every CLI command and server start builds them;
most never call out)."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest

from carnet.app import build_services
from carnet.authn.client_keys import KeySetFetcher
from carnet.authn.outbound import LazyHttpsClient, tls_context
from tests.conftest import make_settings
from tests.support.migrated_store import SqliteTemplate


def test_building_the_services_loads_no_tls_context(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    migrated_sqlite.copy_into(tmp_path / "data")
    tls_context.cache_clear()  # other tests of this process may have built it
    try:
        build_services(make_settings(tmp_path / "data"), migrate=False).close()
        assert tls_context.cache_info().currsize == 0
    finally:
        tls_context.cache_clear()


def test_a_lazy_client_sends_through_its_transport_once_first_used() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    client = LazyHttpsClient(transport=httpx.MockTransport(answer), timeout=5)
    assert seen == []
    assert client.get("https://issuer.example/x").json() == {"ok": True}
    assert client.post("https://issuer.example/y", data={"a": "b"}).status_code == 200
    assert seen == ["https://issuer.example/x", "https://issuer.example/y"]
    client.close()
    assert client.is_closed
    with pytest.raises(RuntimeError):
        client.get("https://issuer.example/x")
    assert len(seen) == 2


def test_a_key_set_fetcher_never_used_closes_without_a_client() -> None:
    tls_context.cache_clear()
    try:
        KeySetFetcher(("keys.example",)).close()
        assert tls_context.cache_info().currsize == 0
    finally:
        tls_context.cache_clear()
