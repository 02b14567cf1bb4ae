"""X-Forwarded-For is believed only from the proxies the ``trusted_proxies`` setting names: a local
client cannot forge its address to escape the login limits or to write a false source into the
audit. The real server (`carnet serve` in a subprocess), since uvicorn is what reads the header."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import orjson
import pytest
from sqlalchemy import create_engine, select

from carnet.audit.models import audit_event
from carnet.cli.serve import forwarding_options
from carnet.settings import Settings
from tests.support.forkserver import ForkServer
from tests.support.migrated_store import SqliteTemplate
from tests.support.serve import carnet_serve

FORGED = [f"203.0.113.{n}" for n in range(1, 9)]


@contextmanager
def _server(data: Path, forks: ForkServer, store: SqliteTemplate, **env: str) -> Iterator[str]:
    """Served from a migrated store, forked. Weak password hashes: the logins here fail on an
    unknown account (one dummy verification each), what is checked is the address believed."""
    store.copy_into(data)
    with carnet_serve(data, forks=forks, password_hash_profile="test-only-weak", **env) as server:
        yield server.base


def _failed_logins(base: str, count: int) -> list[int]:
    """Wrong passwords for one login, each request claiming another forwarded address."""
    statuses = []
    for forged in FORGED[:count]:
        r = httpx.post(
            f"{base}/auth/login",
            json={"login": "someone@exemple.fr", "password": "not the right password"},
            headers={"X-Forwarded-For": forged},
            timeout=30,
        )
        statuses.append(r.status_code)
    return statuses


def _audited_sources(data: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{data / 'carnet.sqlite3'}")
    try:
        with engine.connect() as conn:
            bodies = [orjson.loads(b) for b in conn.execute(select(audit_event.c.body)).scalars()]
    finally:
        engine.dispose()
    return {str(e["source"]) for e in bodies if e.get("action") == "login-failed"}


@pytest.mark.slow  # a real `carnet serve`
def test_forged_forwarded_for_from_loopback_neither_escapes_the_limit_nor_reaches_the_audit(
    tmp_path: Path, forks: ForkServer, migrated_sqlite: SqliteTemplate
) -> None:
    """The first wait is set long (10 min, not the default seconds): a machine so loaded that
    argon2 takes longer than the default wait between two tries must not let a try through and
    pass for a fresh budget. What is checked is unchanged: past the limit, forged addresses still
    get 429, and the audit holds the real source only."""
    data = tmp_path / "data"
    limit = Settings.from_env({}, data_dir=str(data)).login_max_failures
    with _server(data, forks, migrated_sqlite, login_backoff_seconds="600") as base:
        statuses = _failed_logins(base, limit + 2)
    assert statuses[:limit] == [401] * limit
    assert statuses[limit:] == [429, 429]  # the forged addresses did not open fresh budgets
    assert _audited_sources(data) == {"127.0.0.1"}


@pytest.mark.slow  # a real `carnet serve`
def test_forwarded_for_is_believed_from_a_configured_proxy(
    tmp_path: Path, forks: ForkServer, migrated_sqlite: SqliteTemplate
) -> None:
    data = tmp_path / "data"
    with _server(data, forks, migrated_sqlite, trusted_proxies="127.0.0.1") as base:
        _failed_logins(base, 2)
    assert _audited_sources(data) == set(FORGED[:2])


def test_proxy_headers_are_off_unless_proxies_are_configured(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    assert forwarding_options(settings) == {"proxy_headers": False}
    behind = settings.with_(trusted_proxies=("10.0.0.0/8",))
    assert forwarding_options(behind) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.0/8"],
    }
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings.from_env({}, data_dir=str(tmp_path), trusted_proxies="*")
