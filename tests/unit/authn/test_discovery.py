"""Discovery as third-party clients read it: the SMART configuration, the OpenID configuration
and the keys that verify ID tokens (checked with PyJWT, a common relying-party library), and an
issuer that follows the listen address, never the request's Host header."""

from __future__ import annotations

from urllib.parse import urlsplit

import jwt as pyjwt
import orjson
import pytest

from carnet.app import Services
from carnet.authn.clients import ClientKind
from carnet.settings import Settings
from tests.support.oauth import APP_SCOPES, REDIRECT, OAuthEnv, oauth_env


@pytest.fixture
def env(services: Services) -> OAuthEnv:
    return oauth_env(services)


@pytest.fixture
def app_id(env: OAuthEnv) -> str:
    client, _ = env.clients.register(
        "Suivi tension", ClientKind.PUBLIC, APP_SCOPES.split(), redirect_uris=[REDIRECT]
    )
    return client.client_id


def test_smart_configuration(env: OAuthEnv) -> None:
    doc = env.http.get("/.well-known/smart-configuration").json()
    assert doc["token_endpoint"].endswith("/oauth/token")
    assert doc["code_challenge_methods_supported"] == ["S256"]
    for capability in (
        "launch-standalone",
        "client-public",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "permission-v2",
    ):
        assert capability in doc["capabilities"]
    assert env.http.get("/fhir/.well-known/smart-configuration").json() == doc
    keys = env.http.get("/oauth/jwks").json()["keys"]
    assert keys and "d" not in keys[0]


def test_smart_configuration_advertises_v1_scopes_and_the_grants_page(env: OAuthEnv) -> None:
    doc = env.http.get("/.well-known/smart-configuration").json()
    assert {"permission-v1", "permission-v2"} <= set(doc["capabilities"])
    assert doc["management_endpoint"] == f"{env.settings.issuer_url}/oauth/grants"
    env.login_person()
    assert env.http.get("/oauth/grants").status_code == 200  # where it points exists


def test_issuer_is_derived_from_the_listen_address_when_not_set() -> None:
    assert Settings.from_env({"CARNET_PORT": "8123"}).issuer_url == "http://127.0.0.1:8123"
    ipv6 = Settings.from_env({"CARNET_HOST": "::1", "CARNET_PORT": "8124"})
    assert ipv6.issuer_url == "http://[::1]:8124"
    assert ipv6.oidc_issuer == "http://[::1]:8124/dev-idp"
    chosen = {"CARNET_ISSUER_URL": "https://carnet.example/", "CARNET_PORT": "8125"}
    assert Settings.from_env(chosen).issuer_url == "https://carnet.example"


def test_one_public_address_serves_issuer_and_fhir_links() -> None:
    """The public address is one setting: the issuer and the FHIR links follow it, and an
    operator who set only the FHIR base (base_url) gets an issuer on the same host."""
    public = Settings.from_env({"CARNET_PUBLIC_BASE_URL": "https://carnet.example"})
    assert public.issuer_url == "https://carnet.example"
    assert public.fhir_base_url == "https://carnet.example/fhir"
    fhir_only = Settings.from_env({"CARNET_BASE_URL": "https://sante.example/fhir"})
    assert fhir_only.public_base_url == "https://sante.example"
    assert fhir_only.issuer_url == "https://sante.example"
    assert fhir_only.fhir_base_url == "https://sante.example/fhir"


def test_discovery_never_takes_the_issuer_from_the_host_header(services: Services) -> None:
    env = oauth_env(services)
    doc = env.http.get(
        "/.well-known/smart-configuration", headers={"Host": "evil.example:8443"}
    ).json()
    assert doc["issuer"] == services.settings.issuer_url
    assert "evil" not in orjson.dumps(doc).decode()


def test_id_token_verifies_with_pyjwt_rs256(env: OAuthEnv, app_id: str) -> None:
    """A relying party using only the published OpenID configuration verifies the ID token."""
    env.login_person("pat-77")
    body = env.code_flow(app_id)
    config = env.http.get("/.well-known/openid-configuration").json()
    assert config["issuer"] == env.settings.issuer_url
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    for field in (
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
    ):
        assert config[field]
    jwks = env.http.get(urlsplit(config["jwks_uri"]).path).json()
    assert {k["kty"] for k in jwks["keys"]} == {"RSA", "OKP"}  # RS256 and Ed25519 both published
    assert all("d" not in k and "p" not in k for k in jwks["keys"])
    id_token = body["id_token"]
    header = pyjwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    key = pyjwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = pyjwt.decode(
        id_token,
        key,
        algorithms=["RS256"],
        audience=app_id,
        issuer=config["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    assert claims["nonce"] == "n-1"
    assert claims["fhirUser"].endswith("/Patient/pat-77")
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(id_token, key, algorithms=["RS256"], audience="another-app")
    with pytest.raises(pyjwt.InvalidIssuerError):
        pyjwt.decode(
            id_token, key, algorithms=["RS256"], audience=app_id, issuer="https://elsewhere"
        )
    head, payload, signature = id_token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(forged, key, algorithms=["RS256"], audience=app_id)
