"""Backend services that publish their keys at a JWKS URL: registered only on hosts the operator
declared (``jwks_url_hosts``), fetched through an injected transport (no network here), cached
briefly, fetched again for a rotated key, and the only URL a ``jku`` header may name."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from carnet.app import Services
from carnet.authn.client_keys import CACHE_SECONDS, KeySetFetcher
from carnet.authn.clients import ClientError, ClientKind
from tests.support.oauth import OAuthEnv, assertion, backend_key, oauth_env, public_jwks

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KEYS_URL = "https://keys.lab.example/.well-known/jwks.json"


class FakeKeyServer:
    """The lab's key server: answers ``KEYS_URL`` with the current key set, counts requests."""

    def __init__(self, *keys: Any) -> None:
        self.jwks = public_jwks(*keys)
        self.requests: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if str(request.url) != KEYS_URL:
            return httpx.Response(404)
        return httpx.Response(200, json=self.jwks)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> Any:
    return backend_key("lab-2026")


@pytest.fixture
def key_server(key: Any) -> FakeKeyServer:
    return FakeKeyServer(key)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def env(services: Services, key_server: FakeKeyServer, clock: Clock) -> OAuthEnv:
    settings = services.settings.with_(jwks_url_hosts=("keys.lab.example",))
    fetcher = KeySetFetcher(
        settings.jwks_url_hosts, transport=httpx.MockTransport(key_server.handle), now=clock
    )
    return oauth_env(services, settings=settings, key_sets=fetcher)


@pytest.fixture
def lab(env: OAuthEnv) -> str:
    client, _ = env.clients.register(
        "Laboratoire", ClientKind.BACKEND, ["system/Observation.rs"], jwks_url=KEYS_URL
    )
    return client.client_id


def _request(env: OAuthEnv, signed: str) -> Any:
    return env.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Observation.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


def _endpoint(env: OAuthEnv) -> str:
    return f"{env.settings.issuer_url}/oauth/token"


@pytest.mark.parametrize(
    "url",
    [
        "https://keys.elsewhere.example/jwks.json",  # a host not declared
        "http://keys.lab.example/jwks.json",  # not https
        "https://user:pw@keys.lab.example/jwks.json",
    ],
)
def test_jwks_url_on_an_undeclared_host_is_refused_at_registration(env: OAuthEnv, url: str) -> None:
    with pytest.raises(ClientError):
        env.clients.register("Labo", ClientKind.BACKEND, ["system/*.rs"], jwks_url=url)


def test_no_jwks_url_can_be_registered_by_default(services: Services) -> None:
    assert services.settings.jwks_url_hosts == ()
    with pytest.raises(ClientError, match="jwks_url_hosts"):
        services.clients.register("Labo", ClientKind.BACKEND, ["system/*.rs"], jwks_url=KEYS_URL)


def test_backend_authenticates_with_keys_fetched_from_its_jwks_url(
    env: OAuthEnv, key: Any, lab: str, key_server: FakeKeyServer, clock: Clock
) -> None:
    for _ in range(2):
        r = _request(env, assertion(key, lab, _endpoint(env)))
        assert r.status_code == 200, r.text
    assert key_server.requests == [KEYS_URL]  # cached
    clock.now += CACHE_SECONDS + 1
    assert _request(env, assertion(key, lab, _endpoint(env))).status_code == 200
    assert len(key_server.requests) == 2  # the cache is short-lived


def test_a_rotated_key_is_fetched_again(
    env: OAuthEnv, key: Any, lab: str, key_server: FakeKeyServer, clock: Clock
) -> None:
    assert _request(env, assertion(key, lab, _endpoint(env))).status_code == 200
    rotated = backend_key("lab-2027")
    key_server.jwks = public_jwks(rotated)
    clock.now += 30  # within the cache's lifetime, but the kid is new
    assert _request(env, assertion(rotated, lab, _endpoint(env))).status_code == 200
    # The withdrawn key is refused once the set was fetched again.
    assert _request(env, assertion(key, lab, _endpoint(env))).status_code == 401


def test_jku_may_name_only_the_registered_jwks_url(env: OAuthEnv, key: Any, lab: str) -> None:
    own = _request(env, assertion(key, lab, _endpoint(env), jku=KEYS_URL))
    assert own.status_code == 200, own.text
    other = "https://keys.lab.example/other.json"  # a declared host, but not the client's URL
    foreign = _request(env, assertion(key, lab, _endpoint(env), jku=other))
    assert foreign.status_code == 401 and foreign.json()["error"] == "invalid_client"


def test_a_key_server_answering_private_keys_or_garbage_authenticates_no_one(
    env: OAuthEnv, key: Any, lab: str, key_server: FakeKeyServer
) -> None:
    key_server.jwks = {"keys": [key.as_dict(private=True)]}
    r = _request(env, assertion(key, lab, _endpoint(env)))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
