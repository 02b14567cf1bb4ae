"""Backups to an S3-compatible target (carnet/backup/s3.py): `carnet backup --to s3://bucket/prefix`
against a local S3 server (moto's server mode, started by this module on loopback), then restore,
drill and retention from it; nothing readable on the server; a crypto-shredded patient unreadable
in every restored snapshot; a missing endpoint, missing credentials, an unreachable server or an
undeclared jurisdiction refused in one clear line that never shows the secret; the sovereignty
report lists the target with its jurisdiction."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import Result

from carnet.app import Services, build_services
from carnet.demo.pdf import make_pdf
from carnet.fhir.errors import FhirError
from carnet.settings import Settings
from carnet.sovereignty.report import sovereignty_report
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke
from tests.support.migrated_store import SqliteTemplate

BUCKET = "carnet-backups"
ACCESS_KEY = "carnet-test-access"
SECRET = "carnet-test-secret-DO-NOT-PRINT"
FAMILY = "Zebulon-S3"
MARKER = "S3-REPORT-MARKER-5521"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@cache  # one client an endpoint: each new boto3 session parses botocore's JSON models again
def _client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
    )


def _objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    client = _client(endpoint)
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listed
    }


def _env(data_dir: Path, endpoint: str, **more: str) -> dict[str, str]:
    return {
        "CARNET_DATA_DIR": str(data_dir),
        "CARNET_DATABASE_URL": "",
        "CARNET_BACKUP_S3_ENDPOINT": endpoint,
        "CARNET_BACKUP_S3_ACCESS_KEY": ACCESS_KEY,
        "CARNET_BACKUP_S3_SECRET": SECRET,
        "CARNET_BACKUP_JURISDICTION": "FR",
        "COLUMNS": "250",
        **more,
    }


def _run(env: dict[str, str], *args: str) -> Result:
    return invoke(args, env=env, catch_exceptions=False)


def _patient(services: Services, family: str) -> str:
    body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ana"]}]}
    return str(services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id)


def _document(services: Services, pid: str, text: str) -> None:
    body = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{pid}"},
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(make_pdf(text, [])).decode(),
                }
            }
        ],
    }
    services.fhir.create("DocumentReference", body, ctx=AS_LOCAL_OPERATOR)


@pytest.fixture
def live(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> Iterator[Services]:
    migrated_sqlite.copy_into(tmp_path / "data")
    services = build_services(make_settings(tmp_path / "data"), migrate=False)
    try:
        yield services
    finally:
        services.close()


def _snapshot_id(output: str) -> str:
    found = re.search(r"snapshot (\S+) to ", output)
    assert found is not None, output
    return found[1]


def test_backup_restore_drill_and_retention_on_an_s3_target(
    tmp_path: Path, live: Services, s3_endpoint: str
) -> None:
    kept = _patient(live, FAMILY)
    shredded = _patient(live, "Lemoine-S3")
    _document(live, kept, MARKER)
    env = _env(live.settings.data_dir, s3_endpoint)
    target = "s3://carnet-backups/site-a"

    first = _run(env, "backup", "--to", target)
    assert first.exit_code == 0, first.output
    assert f"to {target} at {s3_endpoint} (FR)" in first.output
    with live.fhir.repo.unit() as unit:
        assert unit.destroy_patient_key(shredded)
    second = _run(env, "backup", "--target", target)
    assert second.exit_code == 0 and "1 shredded" in second.output, second.output

    # What the server holds is sealed: no name, no document text, no wrapped key in clear.
    stored = _objects(s3_endpoint, "site-a")
    assert any(k.startswith("site-a/snapshots/") for k in stored)
    assert any(k.startswith("site-a/chunks/") for k in stored)
    blob = b"".join(stored.values())
    assert FAMILY.encode() not in blob and MARKER.encode() not in blob

    drill = _run(env, "backup", "drill", "--from", target)
    assert drill.exit_code == 0, drill.output
    assert drill.output.count(" ok: ") == 2
    assert drill.output.count("1 shredded patients, 0 readable") == 2

    # Restore the snapshot taken BEFORE the shredding into an empty directory, from S3 alone.
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    shutil.copy(live.settings.key_file, restored / "master.key")
    back = _run(
        _env(restored, s3_endpoint), "restore", _snapshot_id(first.output), "--from", target
    )
    assert back.exit_code == 0, back.output
    again = build_services(make_settings(restored), migrate=False)
    try:
        read = again.fhir.read("Patient", kept, ctx=AS_LOCAL_OPERATOR)
        assert read.body is not None and read.body["name"][0]["family"] == FAMILY
        with pytest.raises(FhirError):
            again.fhir.read("Patient", shredded, ctx=AS_LOCAL_OPERATOR)
    finally:
        again.close()

    # Retention applies on S3 too: one snapshot kept, the other's manifest and chunks deleted.
    pruned = _run(env, "backup", "--to", target, "--keep", "1")
    assert pruned.exit_code == 0 and "2 old snapshots pruned" in pruned.output, pruned.output
    listed = _run(env, "backup", "list", "--from", target)
    assert listed.exit_code == 0 and len(listed.output.strip().splitlines()) == 1, listed.output
    assert len(_objects(s3_endpoint, "site-a")) < len(stored) + 4
    assert SECRET not in first.output + drill.output + back.output + pruned.output


def test_a_backup_to_s3_set_by_the_backup_target_setting(live: Services, s3_endpoint: str) -> None:
    env = _env(live.settings.data_dir, s3_endpoint, CARNET_BACKUP_TARGET="s3://carnet-backups/b")
    result = _run(env, "backup")
    assert result.exit_code == 0, result.output
    assert any(k.startswith("b/snapshots/") for k in _objects(s3_endpoint, "b"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"CARNET_BACKUP_S3_ENDPOINT": ""}, "needs its endpoint (backup_s3_endpoint)"),
        ({"CARNET_BACKUP_S3_SECRET": ""}, "needs credentials"),
        ({"CARNET_BACKUP_JURISDICTION": ""}, "jurisdiction is not declared"),
        ({"CARNET_BACKUP_JURISDICTION": "US"}, "outside the European Economic Area"),
        ({"CARNET_BACKUP_S3_ENDPOINT": "http://127.0.0.1:9"}, "cannot be reached"),
        ({"bucket": "no-such-bucket"}, "refused put_object: NoSuchBucket"),
        ({"bucket": "carnet-backups/../escape"}, "no empty, '.' or '..' segment"),
    ],
)
def test_an_unusable_s3_target_is_one_clear_error_that_writes_nothing(
    tmp_path: Path,
    migrated_sqlite: SqliteTemplate,
    s3_endpoint: str,
    change: dict[str, str],
    expected: str,
) -> None:
    migrated_sqlite.copy_into(tmp_path / "data")
    bucket = change.pop("bucket", BUCKET)
    prefix = "refused-" + re.sub(r"\W", "", next(iter(change.values()), bucket) or "empty")[:20]
    env = _env(tmp_path / "data", s3_endpoint, **change)
    result = invoke(["backup", "--to", f"s3://{bucket}/{prefix}"], env=env)
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output, result.output
    assert "DO-NOT-PRINT" not in result.output
    assert _objects(s3_endpoint, prefix) == {}


def test_the_sovereignty_report_lists_the_s3_target_with_its_jurisdiction(tmp_path: Path) -> None:
    settings: Settings = Settings.from_env(
        {
            "CARNET_BACKUP_TARGET": "s3://carnet-backups/site-a",
            "CARNET_BACKUP_S3_ENDPOINT": "https://s3.fr-par.example.eu",
            "CARNET_BACKUP_S3_ACCESS_KEY": ACCESS_KEY,
            "CARNET_BACKUP_S3_SECRET": SECRET,
            "CARNET_BACKUP_JURISDICTION": "FR",
            "CARNET_SOVEREIGNTY_DECLARATIONS": "s3.fr-par.example.eu=FR:HDS,backup=FR:HDS",
        },
        data_dir=str(tmp_path / "data"),
    )
    found = sovereignty_report(settings)
    [backups] = [d for d in found if d.what == "backups"]
    assert backups.location == "s3://carnet-backups/site-a at https://s3.fr-par.example.eu"
    assert (backups.jurisdiction, backups.certifications) == ("FR", ("HDS",))
    [endpoint] = [d for d in found if d.setting == "backup_s3_endpoint"]
    assert endpoint.what == "outbound requests" and endpoint.jurisdiction == "FR"
    assert endpoint.refusal is None
    assert all(SECRET not in str(d.as_json()) and ACCESS_KEY not in str(d.as_json()) for d in found)
    undeclared = settings.with_(sovereignty_declarations="backup=FR")
    [endpoint] = [d for d in sovereignty_report(undeclared) if d.setting == "backup_s3_endpoint"]
    assert endpoint.refusal is not None and "undeclared" in endpoint.refusal
