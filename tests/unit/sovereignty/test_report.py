"""The sovereignty report: every destination the settings allow, and what --strict refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from carnet.backup.jurisdictions import EEA
from carnet.settings import Settings
from carnet.sovereignty.report import (
    UNDECLARED,
    DeclarationError,
    Destination,
    parse_declarations,
    sovereignty_report,
    strict_refusal,
    strict_refusals,
)
from tests.support.cli import invoke

SECRET = "s3cr3t-pa55"


def _settings(tmp_path: Path, **overrides: str) -> Settings:
    declared = {"hosting_jurisdiction": "FR", "backup_jurisdiction": "DE"}
    return Settings.from_env({}, data_dir=str(tmp_path / "data"), **(declared | overrides))


def _by_setting(destinations: list[Destination]) -> dict[str, list[Destination]]:
    found: dict[str, list[Destination]] = {}
    for d in destinations:
        found.setdefault(d.setting, []).append(d)
    return found


def test_every_destination_of_the_settings_is_listed(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        database_url=f"postgresql+psycopg://carnet:{SECRET}@db.example.fr:5432/carnet",
        oidc_issuer="https://auth.esante.gouv.fr/auth/realms/esante-wallet",
        jwks_url_hosts="keys.hospital.de,keys.example.com",
        hosting_certifications="HDS,SecNumCloud",
        sovereignty_declarations="db.example.fr=FR:HDS+SecNumCloud,auth.esante.gouv.fr=FR:HDS,"
        "keys.hospital.de=DE,backup=DE:HDS",
    )
    found = _by_setting(sovereignty_report(settings))
    what = {(d.what, d.setting) for ds in found.values() for d in ds}
    assert what == {
        ("data", "database_url"),
        ("data", "data_dir"),
        ("data", "export_dir"),
        ("data", "import_dir"),
        ("keys", "key_file"),
        ("backups", "backup_jurisdiction"),
        ("logs", "-"),
        ("notifications", "data_dir"),
        ("outbound requests", "oidc_issuer"),
        ("outbound requests", "jwks_url_hosts"),
    }
    database = found["database_url"][0]
    assert database.location == "postgresql+psycopg://db.example.fr:5432"
    assert (database.jurisdiction, database.certifications) == ("FR", ("HDS", "SecNumCloud"))
    assert found["key_file"][0].location == str(tmp_path / "data" / "master.key")
    assert found["key_file"][0].certifications == ("HDS", "SecNumCloud")  # the host's
    backup = found["backup_jurisdiction"][0]
    assert (backup.jurisdiction, backup.certifications) == ("DE", ("HDS",))
    assert found["oidc_issuer"][0].location == "https://auth.esante.gouv.fr"
    jwks = {d.location: d.jurisdiction for d in found["jwks_url_hosts"]}
    assert jwks == {"https://keys.hospital.de": "DE", "https://keys.example.com": ""}


def test_local_destinations_take_the_hosting_jurisdiction(tmp_path: Path) -> None:
    """SQLite, the data directory and a loopback issuer are on the server's own machine."""
    settings = _settings(tmp_path, database_url="postgresql+psycopg://u@127.0.0.1/carnet")
    for d in sovereignty_report(settings):
        if d.what != "backups":
            assert d.jurisdiction == "FR", d.setting
    assert strict_refusal(settings) is None


def test_a_non_eea_destination_fails_strict_naming_its_setting_never_its_secret(
    tmp_path: Path,
) -> None:
    settings = _settings(
        tmp_path,
        database_url=f"postgresql+psycopg://carnet:{SECRET}@db.cloud.example.com/carnet",
        sovereignty_declarations="db.cloud.example.com=US:HDS",
    )
    refused = strict_refusal(settings)
    assert refused is not None
    assert refused.startswith("sovereignty: database_url:")
    assert "US, outside the European Economic Area" in refused
    assert SECRET not in refused and "carnet:" not in refused


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"hosting_jurisdiction": ""}, "database_url"),  # the host itself undeclared
        ({"backup_jurisdiction": ""}, "backup_jurisdiction"),
        ({"backup_jurisdiction": "CH"}, "backup_jurisdiction"),  # Switzerland is not in the EEA
        ({"oidc_issuer": "https://idp.example.org"}, "oidc_issuer"),  # remote, undeclared
        ({"jwks_url_hosts": "keys.example.org"}, "jwks_url_hosts"),
        ({"key_source": "cloudhsm"}, "key_source"),  # an HSM nobody declared
    ],
)
def test_an_undeclared_or_non_eea_destination_fails_strict(
    tmp_path: Path, overrides: dict[str, str], setting: str
) -> None:
    refused = strict_refusal(_settings(tmp_path, **overrides))
    assert refused is not None
    assert refused.startswith(f"sovereignty: {setting}:")


def test_a_declared_hsm_in_the_eea_passes_strict(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, key_source="softhsm", sovereignty_declarations="softhsm=FR:SecNumCloud"
    )
    keys = [d for d in sovereignty_report(settings) if d.what == "keys"]
    assert [(d.location, d.jurisdiction) for d in keys] == [("hsm:softhsm", "FR")]
    assert strict_refusal(settings) is None


def test_the_eea_is_the_eu_and_iceland_liechtenstein_norway() -> None:
    eu = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE"
    assert frozenset([*eu.split(), "IS", "LI", "NO"]) == EEA
    assert not {"GB", "CH", "US"} & EEA  # adequacy decisions are not EEA hosting


@pytest.mark.parametrize(
    "text",
    ["db.example.fr", "=FR", "db.example.fr=France", "db.example.fr=FR:ISO27001"],
)
def test_an_unreadable_declaration_is_a_clear_error(text: str) -> None:
    with pytest.raises(DeclarationError, match="sovereignty_declarations"):
        parse_declarations(text)


def test_the_command_prints_a_table_json_and_refuses_under_strict(tmp_path: Path) -> None:
    env = {"CARNET_DATA_DIR": str(tmp_path / "data"), "CARNET_HOSTING_JURISDICTION": "FR"}
    table = invoke(["sovereignty"], env=env)
    assert table.exit_code == 0, table.output
    assert "backup_jurisdiction  undeclared" in table.output
    as_json = invoke(["sovereignty", "--json"], env=env)
    assert '"setting": "oidc_issuer"' in as_json.output
    strict = invoke(["sovereignty", "--strict"], env=env)
    assert strict.exit_code == 1
    assert "sovereignty: backup_jurisdiction:" in strict.output
    declared = env | {"CARNET_BACKUP_JURISDICTION": "FR"}
    assert invoke(["sovereignty", "--strict"], env=declared).exit_code == 0


def test_serve_strict_refuses_to_start_outside_the_eea(tmp_path: Path) -> None:
    """Refused before anything opens: no database, no key file is created."""
    env = {
        "CARNET_DATA_DIR": str(tmp_path / "data"),
        "CARNET_HOSTING_JURISDICTION": "FR",
        "CARNET_BACKUP_JURISDICTION": "US",
    }
    served = invoke(["serve", "--strict"], env=env)
    assert served.exit_code == 1
    assert "sovereignty: backup_jurisdiction: backups go to" in served.output
    assert "US, outside the European Economic Area" in served.output
    by_setting = env | {"CARNET_SOVEREIGNTY_STRICT": "true"}
    assert invoke(["serve"], env=by_setting).exit_code == 1
    assert not (tmp_path / "data").exists()


def test_the_built_in_issuer_is_this_server_even_at_a_public_address(tmp_path: Path) -> None:
    """An unset oidc_issuer is <issuer_url>/dev-idp: this server, hosted where it is hosted."""
    settings = _settings(tmp_path, public_base_url="https://carnet.example.fr")
    issuer = [d for d in sovereignty_report(settings) if d.setting == "oidc_issuer"]
    assert [(d.location, d.jurisdiction) for d in issuer] == [("https://carnet.example.fr", "FR")]
    assert strict_refusal(settings) is None


def test_a_jwks_host_with_a_port_takes_its_hosts_declaration(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        jwks_url_hosts="keys.hospital.de:8443",
        sovereignty_declarations="keys.hospital.de=DE:HDS",
    )
    jwks = [d for d in sovereignty_report(settings) if d.setting == "jwks_url_hosts"]
    assert [(d.location, d.jurisdiction) for d in jwks] == [("https://keys.hospital.de:8443", "DE")]


def test_a_spark_cluster_running_research_extractions_is_a_destination(tmp_path: Path) -> None:
    """Extractions with the Spark engine ship decrypted, pseudonymised rows to its master's
    cluster: a remote one is listed and must be declared; local[N] stays on this machine."""
    local = _by_setting(sovereignty_report(_settings(tmp_path)))
    assert "hub_spark_master" not in local
    remote = _settings(tmp_path, hub_spark_master="spark://spark.example.com:7077")
    (cluster,) = _by_setting(sovereignty_report(remote))["hub_spark_master"]
    assert cluster.location == "spark://spark.example.com:7077"
    assert cluster.jurisdiction == UNDECLARED
    assert any("hub_spark_master" in line for line in strict_refusals([cluster]))


def test_create_app_refuses_to_build_under_strict_sovereignty_outside_the_eea(
    tmp_path: Path,
) -> None:
    """Whatever starts the app (uvicorn on carnet.asgi, gunicorn, a test), the setting holds:
    the app is not built, and nothing is opened (no database, no key file)."""
    from carnet.app import create_app
    from carnet.sovereignty.report import SovereigntyRefusedError

    for overrides in ({"backup_jurisdiction": "US"}, {"backup_jurisdiction": ""}):
        settings = _settings(tmp_path, sovereignty_strict="true", **overrides)
        with pytest.raises(SovereigntyRefusedError, match=r"^sovereignty: backup_jurisdiction: "):
            create_app(settings)
        assert not (tmp_path / "data").exists()


def test_create_app_refuses_an_unreadable_declaration_under_strict(tmp_path: Path) -> None:
    from carnet.app import create_app
    from carnet.sovereignty.report import SovereigntyRefusedError

    settings = _settings(tmp_path, sovereignty_strict="true", sovereignty_declarations="x=France")
    with pytest.raises(SovereigntyRefusedError, match="sovereignty_declarations"):
        create_app(settings)
    assert not (tmp_path / "data").exists()


def test_serve_strict_flag_reaches_the_app_its_workers_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`carnet serve --strict` exports the setting: carnet.asgi, imported by each worker, checks
    it again (the flag alone would be lost across uvicorn's import of the app)."""
    from carnet.cli.serve import strict_context
    from carnet.cli.shell import CliContext

    # The export writes the process environment: restored after this test.
    monkeypatch.setenv("CARNET_SOVEREIGNTY_STRICT", "false")
    cli = CliContext({}, _settings(tmp_path))
    assert strict_context(cli, strict=True).settings.sovereignty_strict is True
    assert strict_context(cli, strict=False).settings.sovereignty_strict is False


def test_the_asgi_entry_point_exits_with_one_line_under_strict_sovereignty(tmp_path: Path) -> None:
    """uvicorn (or any ASGI server) importing carnet.asgi gets the refusal as one line and exit
    1, not a traceback through its loader; nothing is opened."""
    import importlib
    import os
    import sys

    from tests.support.forked import exit_code, fork_child

    def child() -> int:
        for name in [n for n in os.environ if n.startswith("CARNET_")]:
            del os.environ[name]
        os.environ |= {
            "CARNET_DATA_DIR": str(tmp_path / "data"),
            "CARNET_HOSTING_JURISDICTION": "FR",
            "CARNET_BACKUP_JURISDICTION": "US",
            "CARNET_SOVEREIGNTY_STRICT": "true",
        }
        sys.modules.pop("carnet.asgi", None)
        importlib.import_module("carnet.asgi")
        return 0

    log = tmp_path / "asgi.log"
    assert exit_code(fork_child(child, log), 120) == 1
    (line,) = log.read_text().splitlines()
    assert line.startswith("error: sovereignty: backup_jurisdiction: backups go to ")
    assert line.endswith(", in US, outside the European Economic Area")
    assert not (tmp_path / "data").exists()
