"""Client registration rules and SMART scope coverage."""

from __future__ import annotations

import pytest

from carnet.app import Services
from carnet.authn import smart_scopes
from carnet.authn.clients import ClientError, ClientKind, ClientService
from tests.support.oauth import REDIRECT, backend_key, public_jwks


@pytest.fixture
def clients(sqlite_services: Services) -> ClientService:
    return ClientService(sqlite_services.engine, sqlite_services.settings)


def test_register_find_list_remove(clients: ClientService) -> None:
    app, secret = clients.register(
        "App", "public", ["patient/*.rs"], redirect_uris=[REDIRECT], client_id="app-1"
    )
    assert secret is None and app.kind is ClientKind.PUBLIC
    conf, secret = clients.register(
        "Conf", "confidential", ["user/*.rs"], redirect_uris=["https://app.example/cb"]
    )
    assert secret and clients.check_secret(conf.client_id, secret)
    assert not clients.check_secret(conf.client_id, secret + "x")
    assert not clients.check_secret("app-1", "")
    assert clients.get("app-1") == app
    assert {c.client_id for c in clients.all()} == {"app-1", conf.client_id}
    with pytest.raises(ClientError, match="already"):
        clients.register(
            "Again", "public", ["patient/*.rs"], redirect_uris=[REDIRECT], client_id="app-1"
        )
    assert clients.remove("app-1") and clients.get("app-1") is None
    assert not clients.remove("app-1")


@pytest.mark.parametrize(
    ("kind", "scopes", "uris", "jwks", "message"),
    [
        ("public", ["patient/*.rs"], [], None, "redirect URI"),
        ("public", ["patient/*.rs"], ["http://app.example/cb"], None, "redirect URI"),
        ("public", ["patient/*.rs"], ["https://app.example/cb#x"], None, "fragment"),
        ("public", ["system/*.rs"], [REDIRECT], None, "backend"),
        ("public", ["nonsense"], [REDIRECT], None, "unknown scope"),
        ("backend", ["system/*.rs"], [], None, "JWKS"),
        ("backend", ["patient/*.rs"], [], "public", "system/"),
        ("backend", ["system/*.rs"], [], "private", "public keys only"),
        ("robot", ["system/*.rs"], [], None, "public, confidential or backend"),
    ],
)
def test_registration_rules(
    clients: ClientService,
    kind: str,
    scopes: list[str],
    uris: list[str],
    jwks: str | None,
    message: str,
) -> None:
    key = backend_key()
    keys = None
    if jwks == "public":
        keys = public_jwks(key)
    elif jwks == "private":
        keys = {"keys": [key.as_dict(private=True)]}
    with pytest.raises(ClientError, match=message):
        clients.register("X", kind, scopes, redirect_uris=uris, jwks=keys)


def test_private_use_scheme_redirects_for_mobile_apps(clients: ClientService) -> None:
    app, _ = clients.register(
        "Mobile", "public", ["patient/*.rs"], redirect_uris=["fr.example.carnet:/oauth"]
    )
    assert app.redirect_uris == ("fr.example.carnet:/oauth",)


@pytest.mark.parametrize(
    ("allowed", "requested", "ok"),
    [
        (["patient/*.rs"], "patient/Observation.rs", True),
        (["patient/*.rs"], "patient/Observation.r", True),
        (["patient/*.rs"], "patient/Observation.cruds", False),
        (["patient/*.cruds"], "patient/Observation.read", True),
        (["patient/Observation.rs"], "patient/Condition.rs", False),
        (["user/*.rs"], "patient/Observation.rs", False),
        (["patient/Observation.rs"], "patient/Observation.rs?category=laboratory", True),
        (["patient/Observation.rs?category=laboratory"], "patient/Observation.rs", False),
        (["openid"], "openid", True),
        (["openid"], "fhirUser", False),
        (["patient/*.rs"], "patient/*.sr", False),
    ],
)
def test_scope_coverage(allowed: list[str], requested: str, ok: bool) -> None:
    assert smart_scopes.covered(allowed, requested) is ok
