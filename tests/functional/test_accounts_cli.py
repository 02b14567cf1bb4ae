"""`carnet accounts ...`: a register extract through provisioning, objection, closure, sweep."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import Result

from carnet.app import build_services
from carnet.identity.ins import INS_NIR_OID
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke
from tests.unit.record.helpers import (
    BABY,
    CLAIRE,
    ODILE,
    PAUL,
    family_bundle,
    family_csv,
    write_csv,
)


def _run(data_dir: Path, *args: str, **env: str) -> Result:
    environ = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "250"}
    environ.update({f"CARNET_{k.upper()}": v for k, v in env.items()})
    return invoke(args, env=environ, catch_exceptions=False)


def _ids(data_dir: Path) -> dict[str, str]:
    services = build_services(make_settings(data_dir))
    try:
        out = {}
        for name, person in (("claire", CLAIRE), ("baby", BABY), ("paul", PAUL), ("odile", ODILE)):
            found = services.fhir.search(
                "http://x/fhir",
                "Patient",
                [("identifier", f"{INS_NIR_OID}|{person.nir}")],
                ctx=AS_LOCAL_OPERATOR,
            )
            out[name] = found["entry"][0]["resource"]["id"] if found.get("entry") else ""
        return out
    finally:
        services.close()


def test_accounts_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad_nir = PAUL.nir[:-2] + ("01" if PAUL.nir[-2:] != "01" else "02")
    bad = write_csv(tmp_path / "bad.csv", [CLAIRE.row(), PAUL.row().replace(PAUL.nir, bad_nir)])
    failed = _run(data, "accounts", "provision", str(bad))
    assert failed.exit_code == 1
    assert "row 3: invalid NIR in nir: check key" in failed.output
    assert "nothing was provisioned" in failed.output
    assert _ids(data) == {"claire": "", "baby": "", "paul": "", "odile": ""}

    register = family_csv(tmp_path / "register.csv")
    done = _run(data, "accounts", "provision", str(register))
    assert done.exit_code == 0, done.output
    assert "4 space(s) created, 0 already known" in done.output
    assert "2 representative(s)" in done.output
    again = _run(data, "accounts", "provision", str(register))
    assert "0 space(s) created, 4 already known" in again.output
    bundle = _run(data, "accounts", "provision", str(family_bundle(tmp_path / "register.json")))
    assert "0 space(s) created, 3 already known" in bundle.output, bundle.output
    ids = _ids(data)

    shown = _run(data, "accounts", "show", ids["baby"])
    assert f"Patient/{ids['baby']} pending" in shown.output
    assert f"represented by Patient/{ids['claire']} (parent" in shown.output
    assert "has no personal space" in _run(data, "accounts", "show", "nobody").output

    assert "refused" in _run(data, "accounts", "object", ids["paul"]).output
    repeat = _run(data, "accounts", "object", ids["paul"])
    assert repeat.exit_code == 1 and "already refused" in repeat.output

    closed = _run(data, "accounts", "close", ids["claire"], record_retention_years="0")
    assert closed.exit_code == 0 and "closed; data kept until" in closed.output
    outbox = tmp_path / "outbox.ndjson"
    swept = _run(data, "accounts", "sweep", "--outbox", str(outbox), objection_window_days="0")
    assert swept.exit_code == 0, swept.output
    # The sweep reads each space's own deadline (set at provisioning): nothing opens yet.
    assert "0 space(s) opened, 1 crypto-shredded" in swept.output
    lines = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert lines and all(
        set(line) <= {"id", "patient_id", "recipient_patient_id", "kind", "created_at", "deadline"}
        for line in lines
    )
    assert "LEFEBVRE" not in outbox.read_text(encoding="utf-8").upper()
    assert (
        f"Patient/{ids['claire']} shredded" in _run(data, "accounts", "show", ids["claire"]).output
    )

    added = _run(
        data,
        "accounts",
        "represent",
        ids["odile"],
        ids["baby"],
        "--kind",
        "curator",
        "--until",
        "2100-01-01",
    )
    assert "now represents" in added.output, added.output
    parent_of_adult = _run(data, "accounts", "represent", ids["odile"], ids["paul"])
    assert parent_of_adult.exit_code == 1 and "is of age" in parent_of_adult.output
    ended = _run(data, "accounts", "represent", ids["odile"], ids["baby"], "--end")
    assert "1 representation(s)" in ended.output
    assert _run(data, "accounts", "represent", "a", "b", "--until", "soon").exit_code == 1
