"""`carnet clients ...` and `carnet token issue` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from sqlalchemy import select
from typer.testing import Result

from carnet.app import build_services
from carnet.audit.models import audit_event
from carnet.authn.tokens import principal_from_token
from carnet.caller import Kind
from tests.conftest import make_settings
from tests.support.cli import invoke
from tests.support.oauth import backend_key, public_jwks


def _run(data_dir: Path, *args: str) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "250"}
    return invoke(args, env=env, catch_exceptions=False)


def test_clients_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = _run(
        data,
        "clients",
        "add",
        "Suivi",
        "--scope",
        "patient/*.rs",
        "--scope",
        "launch/patient",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
        "--client-id",
        "suivi",
    )
    assert r.exit_code == 0 and "client suivi registered (public)" in r.output
    r = _run(
        data,
        "clients",
        "add",
        "Cabinet",
        "--kind",
        "confidential",
        "--scope",
        "user/*.rs",
        "--redirect-uri",
        "https://cabinet.example/cb",
        "--client-id",
        "cab",
    )
    assert r.exit_code == 0 and "client secret" in r.output
    jwks = tmp_path / "lab.jwks.json"
    jwks.write_text(json.dumps(public_jwks(backend_key())))
    r = _run(
        data,
        "clients",
        "add",
        "Labo",
        "--kind",
        "backend",
        "--scope",
        "system/*.rs",
        "--jwks",
        str(jwks),
        "--client-id",
        "labo",
    )
    assert r.exit_code == 0, r.output
    r = _run(data, "clients", "add", "Bad", "--kind", "backend", "--scope", "system/*.rs")
    assert r.exit_code == 1 and "JWKS" in r.output
    listed = _run(data, "clients", "list").output
    assert "suivi  public" in listed and "labo  backend" in listed and "cab  confidential" in listed
    assert _run(data, "clients", "remove", "suivi").exit_code == 0
    assert _run(data, "clients", "remove", "suivi").exit_code == 1
    assert "suivi" not in _run(data, "clients", "list").output


def test_token_issue(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = invoke(
        ["token", "issue", "--operator", "alice", "--scope", "system/*.rs"],
        # the same public address as make_settings: the token's iss is the issuer derived from it
        env={
            "CARNET_DATA_DIR": str(data),
            "CARNET_DATABASE_URL": "",
            "CARNET_PUBLIC_BASE_URL": "http://127.0.0.1",
        },
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[0]
    services = build_services(make_settings(data))
    try:
        signer = services.crypto.token_signer()
        principal = principal_from_token(signer, services.settings, token)
        assert principal.kind is Kind.OPERATOR and principal.subject == "operator:alice"
        assert principal.scopes == {"system/*.rs"}
        claims = signer.verify(
            token, audience=services.settings.token_audience, issuer=services.settings.issuer_url
        )
        assert claims["exp"] - claims["iat"] == int(60 * services.settings.access_token_minutes)
        with services.engine.connect() as conn:
            bodies = [orjson.loads(b) for b in conn.execute(select(audit_event.c.body)).scalars()]
        assert any(b["action"] == "token-issue" and b["actor"] == "operator:alice" for b in bodies)
    finally:
        services.close()
    bad = _run(data, "token", "issue", "--operator", "alice", "--scope", "patient/*.rs")
    assert bad.exit_code == 1 and "system/" in bad.output
    assert _run(data, "token", "issue", "--operator", "Alice Smith").exit_code == 1
    assert _run(data, "token", "issue", "--operator", "bob", "--minutes", "600").exit_code == 1


def test_clients_add_takes_a_jwks_url_on_a_declared_host_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = "https://keys.lab.example/jwks.json"
    args = ("clients", "add", "Labo", "--kind", "backend", "--scope", "system/*.rs")
    refused = _run(data, *args, "--jwks-url", url)
    assert refused.exit_code == 1 and "jwks_url_hosts" in refused.output
    env = {
        "CARNET_DATA_DIR": str(data),
        "CARNET_DATABASE_URL": "",
        "CARNET_JWKS_URL_HOSTS": "keys.lab.example",
        "COLUMNS": "250",
    }
    done = invoke(
        [*args, "--jwks-url", url, "--client-id", "labo"], env=env, catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    listed = _run(data, "clients", "list").output
    assert "labo  backend" in listed and url in listed
