"""`carnet watch ...`: the operator scans, reads the queue (text and JSON), refuses a bad
outcome with a clear error, closes an alert; names never reach the output."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import Result

from carnet.app import build_services
from tests.conftest import make_settings
from tests.support.cli import invoke
from tests.support.migrated_store import SqliteTemplate
from tests.support.watch_world import STREET, SURNAME, build_watch_world


def _run(data_dir: Path, *args: str) -> Result:
    environ = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "250"}
    return invoke(args, env=environ, catch_exceptions=False)


def test_the_officer_scans_reads_and_closes_alerts_from_the_cli(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    data = tmp_path / "data"
    migrated_sqlite.copy_into(data)
    services = build_services(make_settings(data), migrate=False)
    try:
        world = build_watch_world(services)
    finally:
        services.close()

    scanned = _run(data, "watch", "scan")
    assert scanned.exit_code == 0, scanned.output
    assert "1 new alert(s)" in scanned.output

    listed = _run(data, "watch", "alerts")
    assert world.pro in listed.output and "family" in listed.output
    as_json = json.loads(_run(data, "watch", "alerts", "--json").output)
    (alert,) = as_json["alerts"]
    assert alert["patients"] == [world.relative]
    for output in (listed.output, json.dumps(as_json)):
        assert SURNAME.casefold() not in output.casefold()
        assert STREET.casefold() not in output.casefold()

    refused = _run(data, "watch", "close", alert["id"], "--reason", "whatever")
    assert refused.exit_code == 1
    assert "error: the outcome is one of confirmed" in refused.output
    unknown = _run(data, "watch", "close", "no-such-alert", "--reason", "legitimate")
    assert (unknown.exit_code, "no such alert" in unknown.output) == (1, True)
    bad_flag = _run(data, "watch", "flag", world.stranger, "--kind", "celebrity")
    assert bad_flag.exit_code == 1

    closed = _run(data, "watch", "close", alert["id"], "--reason", "legitimate")
    assert closed.exit_code == 0 and "closed: legitimate" in closed.output
    assert "no open alert" in _run(data, "watch", "alerts").output
    shown = json.loads(_run(data, "watch", "show", alert["id"]).output)
    assert (shown["status"], shown["outcome"]) == ("closed", "legitimate")
