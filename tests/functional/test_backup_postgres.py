"""Backups of a PostgreSQL store (carnet/backup/postgres.py): pg_dump on an exported snapshot,
restored with pg_restore into an empty database; the drill restores into a scratch database on
the same server; crypto-shredding reaches the snapshots as on SQLite."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import Result

from carnet.app import build_services
from carnet.demo.pdf import make_pdf
from carnet.fhir.errors import FhirError
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke
from tests.support.migrated_store import PostgresTemplate
from tests.support.postgres import ThrowawayPostgres

MARKER = "PG-BACKUP-MARKER-5521"


def _run(data_dir: Path, database_url: str, *args: str) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": database_url, "COLUMNS": "250"}
    return invoke(args, env=env, catch_exceptions=False)


@pytest.mark.slow  # two pg_dumps, a drill of two snapshots into scratch databases, a pg_restore
def test_a_postgres_store_backs_up_restores_and_drills(
    tmp_path: Path, migrated_postgres: PostgresTemplate, postgres: ThrowawayPostgres
) -> None:
    live_url = migrated_postgres.clone("backup_live")
    settings = make_settings(tmp_path / "data", live_url)
    services = build_services(settings, migrate=False)
    try:
        fhir = services.fhir
        body = {"resourceType": "Patient", "name": [{"family": "Kept"}]}
        kept = fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id
        gone = fhir.create("Patient", {**body, "name": [{"family": "Gone"}]}, ctx=AS_LOCAL_OPERATOR)
        pdf = base64.b64encode(make_pdf(MARKER, [])).decode()
        document = {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": {"reference": f"Patient/{kept}"},
            "content": [{"attachment": {"contentType": "application/pdf", "data": pdf}}],
        }
        doc = fhir.create("DocumentReference", document, ctx=AS_LOCAL_OPERATOR).stored.res_id
        backups = tmp_path / "backups"
        taken = _run(
            settings.data_dir, live_url, "backup", "--to", str(backups), "--jurisdiction", "FR"
        )
        assert taken.exit_code == 0, taken.output
        [snapshot_id] = re.findall(r"^snapshot (\S+) to ", taken.output, re.M)
        with fhir.repo.unit() as unit:
            assert unit.destroy_patient_key(gone.stored.res_id)
        again = _run(
            settings.data_dir, live_url, "backup", "--to", str(backups), "--jurisdiction", "FR"
        )
        assert again.exit_code == 0, again.output

        drill = _run(settings.data_dir, live_url, "backup", "drill", "--from", str(backups))
        assert drill.exit_code == 0, drill.output
        lines = [line for line in drill.output.splitlines() if line.strip()]
        assert len(lines) == 2 and all(" ok: " in line for line in lines), drill.output
        assert all("1 shredded patients, 0 readable" in line for line in lines), drill.output

        # The snapshot from before the shredding, into an empty database.
        target = tmp_path / "restored"
        target.mkdir()
        shutil.copy2(settings.key_file, target / "master.key")
        empty_url = postgres.create_database("backup_restored")
        restored = _run(target, empty_url, "restore", snapshot_id, "--from", str(backups))
        assert restored.exit_code == 0, restored.output
        other = tmp_path / "other"
        other.mkdir()
        shutil.copy2(settings.key_file, other / "master.key")
        into_full = _run(other, live_url, "restore", snapshot_id, "--from", str(backups))
        assert into_full.exit_code == 1 and "is not empty" in into_full.output
    finally:
        services.close()
    back = build_services(make_settings(target, empty_url), migrate=False)
    try:
        read = back.fhir.read("DocumentReference", doc, ctx=AS_LOCAL_OPERATOR)
        attachment = read.body["content"][0]["attachment"] if read.body else {}
        assert MARKER.encode() in base64.b64decode(attachment["data"])
        with pytest.raises(FhirError) as erased:
            back.fhir.read("Patient", gone.stored.res_id, ctx=AS_LOCAL_OPERATOR)
        assert erased.value.status == 410
    finally:
        back.close()
