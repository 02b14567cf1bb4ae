"""The development identity provider is off unless the ``dev_idp`` setting turns it on, and says so
at startup while it is on."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carnet.app import build_services, create_app
from carnet.settings import Settings
from tests.conftest import make_settings

DEV_IDP_PATHS = ("/dev-idp/.well-known/openid-configuration", "/dev-idp/jwks", "/dev-idp/authorize")


def _get_all(settings: Settings, caplog: pytest.LogCaptureFixture) -> list[int]:
    services = build_services(settings)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="carnet.authn"),
            TestClient(create_app(settings, services), base_url="http://127.0.0.1") as client,
        ):
            statuses = [client.get(path).status_code for path in DEV_IDP_PATHS]
            statuses.append(client.post("/dev-idp/token", data={}).status_code)
            return statuses
    finally:
        services.close()


def test_dev_idp_endpoints_are_404_when_the_setting_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path / "data")
    assert settings.dev_idp is False  # the default
    assert _get_all(settings, caplog) == [404, 404, 404, 404]
    assert "development identity provider" not in caplog.text


def test_dev_idp_is_served_with_a_startup_warning_when_the_setting_is_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path / "data").with_(dev_idp=True)
    statuses = _get_all(settings, caplog)
    assert statuses[:2] == [200, 200]
    assert 404 not in statuses
    assert "development identity provider is ON" in caplog.text


def test_dev_idp_stays_off_when_professionals_log_in_elsewhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {},
        data_dir=str(tmp_path / "data"),
        dev_idp="true",
        oidc_issuer="https://auth.esante.gouv.fr/auth/realms/esante-wallet",
    )
    assert _get_all(settings, caplog) == [404, 404, 404, 404]


def test_dev_idp_setting_refuses_a_value_that_is_not_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dev_idp"):
        Settings.from_env({}, data_dir=str(tmp_path / "data"), dev_idp="maybe")
