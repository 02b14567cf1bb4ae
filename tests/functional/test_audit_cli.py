"""`carnet audit ...`: verify, checkpoint, witness and export, as an operator runs them."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import Result

from carnet.app import build_services
from carnet.audit.models import audit_checkpoint, audit_event, audit_node, audit_sequencer
from tests.conftest import make_settings
from tests.spec.helpers import patient
from tests.spec.test_audit import docs_verifier
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke


def _run(data_dir: Path, *args: str) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "200"}
    return invoke(args, env=env, catch_exceptions=False)


def _activity(data_dir: Path, reads: int = 3) -> str:
    services = build_services(make_settings(data_dir))
    pid = services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    for _ in range(reads):
        services.fhir.read("Patient", pid, ctx=AS_LOCAL_OPERATOR)
    services.close()  # publishes a checkpoint
    return pid


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_verify_checkpoint_and_tampering(data_dir: Path) -> None:
    _activity(data_dir)
    result = _run(data_dir, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("audit log OK: 4 events, 1 checkpoints")
    result = _run(data_dir, "audit", "checkpoint")
    assert result.exit_code == 0 and "no new events; latest checkpoint: size 4" in result.output
    services = build_services(make_settings(data_dir))
    with services.engine.begin() as conn:
        conn.execute(
            update(audit_event).where(audit_event.c.leaf_index == 2).values(body=b'{"forged":1}')
        )
    services.close()
    result = _run(data_dir, "audit", "verify")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "TAMPERED: first bad event index 2" in lines[0]


def test_witness_directory_and_file(data_dir: Path, tmp_path: Path) -> None:
    _activity(data_dir)
    for target in (tmp_path / "witness-dir", tmp_path / "witness.ndjson"):
        if target.suffix == "":
            target.mkdir()
        first = _run(data_dir, "audit", "witness", str(target))
        assert first.exit_code == 0 and "written (first checkpoint)" in first.output
        again = _run(data_dir, "audit", "witness", str(target))
        assert "already witnessed" in again.output
    _activity(data_dir)
    for target in (tmp_path / "witness-dir", tmp_path / "witness.ndjson"):
        result = _run(data_dir, "audit", "witness", str(target))
        assert result.exit_code == 0 and "written (consistent with 4)" in result.output
    assert len(list((tmp_path / "witness-dir").glob("*.checkpoint"))) == 2
    assert len((tmp_path / "witness.ndjson").read_text().splitlines()) == 2


def test_witness_catches_a_rewritten_and_resigned_log(data_dir: Path, tmp_path: Path) -> None:
    """An intruder with the database AND the signing key re-sequences an edited log and signs it:
    the signatures check out, the consistency proof from the witnessed checkpoint does not."""
    _activity(data_dir)
    witness = tmp_path / "w.ndjson"
    assert _run(data_dir, "audit", "witness", str(witness)).exit_code == 0
    services = build_services(make_settings(data_dir))
    with services.engine.begin() as conn:
        body = conn.execute(
            select(audit_event.c.body).where(audit_event.c.leaf_index == 1)
        ).scalar_one()
        forged = bytes(body).replace(b'"actor":"local"', b'"actor":"ghost"')
        assert forged != body
        conn.execute(update(audit_event).where(audit_event.c.leaf_index == 1).values(body=forged))
        conn.execute(update(audit_event).values(leaf_index=None, leaf_hash=None))
        conn.execute(audit_node.delete())
        conn.execute(audit_checkpoint.delete())
        conn.execute(update(audit_sequencer).values(tree_size=0))
    services.close()
    _activity(data_dir, reads=1)  # more traffic; close() re-sequences and signs everything
    assert _run(data_dir, "audit", "verify").exit_code == 0  # self-consistent again...
    result = _run(data_dir, "audit", "witness", str(witness))
    assert result.exit_code == 1 and "INCONSISTENT" in result.output  # ...but not to the witness


def test_witness_catches_a_rolled_back_log(data_dir: Path, tmp_path: Path) -> None:
    _activity(data_dir)
    _activity(data_dir)
    witness = tmp_path / "w.ndjson"
    assert _run(data_dir, "audit", "witness", str(witness)).exit_code == 0
    services = build_services(make_settings(data_dir))
    with services.engine.begin() as conn:
        conn.execute(audit_event.delete().where(audit_event.c.leaf_index >= 4))
        conn.execute(audit_checkpoint.delete().where(audit_checkpoint.c.tree_size > 4))
        conn.execute(audit_node.delete().where(audit_node.c.idx * (2**audit_node.c.level) >= 4))
        conn.execute(update(audit_sequencer).values(tree_size=4))
    services.close()
    result = _run(data_dir, "audit", "witness", str(witness))
    assert result.exit_code == 1 and "the log shrank" in result.output


def test_export_is_verified_by_the_documented_script(data_dir: Path, tmp_path: Path) -> None:
    pid = _activity(data_dir)
    out = tmp_path / "export.ndjson"
    result = _run(data_dir, "audit", "export", "--patient", pid, "--out", str(out))
    assert result.exit_code == 0 and "5 events exported" in result.output
    script = tmp_path / "verify_export.py"
    script.write_text(docs_verifier(), encoding="utf-8")
    services = build_services(make_settings(data_dir))
    key = base64.b64encode(services.audit.public_key).decode()
    services.close()
    done = subprocess.run(
        [sys.executable, str(script), str(out), key], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("OK: 5 events"), done.stdout
