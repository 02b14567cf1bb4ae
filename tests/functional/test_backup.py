"""Backups that restore (carnet/backup): `carnet backup` takes encrypted, deduplicated snapshots,
`carnet restore` brings one back into an empty data directory, `carnet backup drill` proves every
snapshot, and crypto-shredding a patient reaches every snapshot already taken."""

from __future__ import annotations

import base64
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import Result

from carnet.app import Services, build_services
from carnet.backup.snapshot import copy_sqlite, sqlite_path, strip_data_keys
from carnet.crypto.models import data_key
from carnet.demo.pdf import make_pdf
from carnet.fhir.errors import FhirError
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke
from tests.support.forkserver import ForkServer
from tests.support.migrated_store import SqliteTemplate

FAMILY = "Zebulon-Quincampoix"
PDF_MARKER = "BACKUP-REPORT-MARKER-7741"


def _run(data_dir: Path, *args: str, key_file: Path | None = None) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "250"}
    if key_file is not None:
        env["CARNET_KEY_FILE"] = str(key_file)
    return invoke(args, env=env, catch_exceptions=False)


def _backed_up(data_dir: Path, backups: Path, jurisdiction: str = "FR", *more: str) -> Result:
    """A snapshot of data_dir to backups (a declared EEA target) that succeeds."""
    done = _run(data_dir, "backup", "--to", str(backups), "--jurisdiction", jurisdiction, *more)
    assert done.exit_code == 0, done.output
    return done


def _patient(fhir: Any, family: str) -> str:
    body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ana"]}]}
    return str(fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id)


def _document(fhir: Any, pid: str, text: str) -> str:
    pdf = make_pdf(text, [])
    body = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{pid}"},
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(pdf).decode(),
                }
            }
        ],
    }
    return str(fhir.create("DocumentReference", body, ctx=AS_LOCAL_OPERATOR).stored.res_id)


@pytest.fixture
def live(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> Iterator[tuple[Services, dict[str, str]]]:
    migrated_sqlite.copy_into(tmp_path / "data")
    services = build_services(make_settings(tmp_path / "data"), migrate=False)
    fhir = services.fhir
    kept = _patient(fhir, FAMILY)
    shredded = _patient(fhir, "Lemoine")
    ids = {
        "kept": kept,
        "shredded": shredded,
        "kept_doc": _document(fhir, kept, PDF_MARKER),
        "shredded_doc": _document(fhir, shredded, "OTHER-REPORT"),
    }
    try:
        yield services, ids
    finally:
        services.close()


def _snapshot_ids(output: str) -> list[str]:
    return re.findall(r"^snapshot (\S+) to ", output, re.M)


def _restored(tmp_path: Path, name: str, key_file: Path) -> Path:
    target = tmp_path / name
    target.mkdir()
    shutil.copy2(key_file, target / "master.key")
    return target


def test_backup_restore_and_drill_with_a_patient_shredded_between_snapshots(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    services, ids = live
    data, backups = services.settings.data_dir, tmp_path / "backups"
    first = _backed_up(data, backups)
    with services.fhir.repo.unit() as unit:
        assert unit.destroy_patient_key(ids["shredded"])
    second = _backed_up(data, backups, "fr")
    [first_id], [second_id] = _snapshot_ids(first.output), _snapshot_ids(second.output)
    # The second snapshot stores again only what changed: the blobs are the same chunks.
    counts = re.search(r"(\d+) of (\d+) chunks new", second.output)
    assert counts is not None and int(counts[1]) < int(counts[2]), second.output
    assert "1 shredded" in second.output

    # Encrypted: no name, no document text, no wrapped key in clear on the target.
    for path in backups.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert FAMILY.encode() not in content and PDF_MARKER.encode() not in content

    drill = _run(data, "backup", "drill", "--from", str(backups))
    assert drill.exit_code == 0, drill.output
    lines = [line for line in drill.output.splitlines() if line.strip()]
    assert len(lines) == 2, drill.output
    for line in lines:
        assert " ok: " in line and "(same)" in line, line
        assert "verified" in line and "extended by the live log" in line, line
        assert "1 shredded patients, 0 readable" in line, line

    # Restore the snapshot taken BEFORE the shredding: the patient is unreadable there too.
    key_file = services.settings.key_file
    for snapshot_id in (first_id, second_id):
        target = _restored(tmp_path, f"restored-{snapshot_id}", key_file)
        restored = _run(target, "restore", snapshot_id, "--from", str(backups))
        assert restored.exit_code == 0, restored.output
        assert restored.output.startswith(f"restored snapshot {snapshot_id} into ")
        back = build_services(make_settings(target))
        try:
            document = back.fhir.read("DocumentReference", ids["kept_doc"], ctx=AS_LOCAL_OPERATOR)
            attachment = document.body["content"][0]["attachment"] if document.body else {}
            assert PDF_MARKER.encode() in base64.b64decode(attachment["data"])
            for erased in ("shredded", "shredded_doc"):
                kind = "Patient" if erased == "shredded" else "DocumentReference"
                with pytest.raises(FhirError) as gone:
                    back.fhir.read(kind, ids[erased], ctx=AS_LOCAL_OPERATOR)
                assert gone.value.status == 410
        finally:
            back.close()


def test_restore_refuses_a_data_directory_that_is_not_empty(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    services, _ = live
    backups = tmp_path / "backups"
    _backed_up(services.settings.data_dir, backups, "DE")
    again = _run(services.settings.data_dir, "restore", "--from", str(backups))
    assert again.exit_code == 1
    assert "is not empty" in again.output


def test_backup_refuses_an_undeclared_or_non_eea_target(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    services, _ = live
    data, backups = services.settings.data_dir, tmp_path / "backups"
    undeclared = _run(data, "backup", "--to", str(backups))
    assert undeclared.exit_code == 1
    assert "jurisdiction is not declared" in undeclared.output
    abroad = _run(data, "backup", "--to", str(backups), "--jurisdiction", "US")
    assert abroad.exit_code == 1
    assert "outside the European Economic Area" in abroad.output
    assert not backups.exists()


def test_a_tampered_or_missing_chunk_fails_the_drill_and_the_restore(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    services, _ = live
    data, backups = services.settings.data_dir, tmp_path / "backups"
    _backed_up(data, backups)
    chunk = max(
        (p for p in (backups / "chunks").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    sealed = bytearray(chunk.read_bytes())
    sealed[40] ^= 0x01
    chunk.write_bytes(bytes(sealed))
    drill = _run(data, "backup", "drill", "--from", str(backups))
    assert drill.exit_code == 1
    assert "FAILED" in drill.output and "does not authenticate" in drill.output
    target = _restored(tmp_path, "restored", services.settings.key_file)
    restored = _run(target, "restore", "--from", str(backups))
    assert restored.exit_code == 1
    assert "does not authenticate" in restored.output


def test_a_snapshot_cannot_be_opened_without_the_master_key(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    services, _ = live
    backups = tmp_path / "backups"
    _backed_up(services.settings.data_dir, backups)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    other_key = stranger / "master.key"
    other_key.write_bytes(b"\x07" * 32)
    other_key.chmod(0o600)
    refused = _run(stranger, "restore", "--from", str(backups))
    assert refused.exit_code == 1
    assert "another master key" in refused.output


def test_retention_keeps_the_newest_snapshots_and_their_chunks(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    services, ids = live
    data, backups = services.settings.data_dir, tmp_path / "backups"
    for family in ("One", "Two", "Three"):
        _patient(services.fhir, family)
        _backed_up(data, backups, "FR", "--keep", "2")
    assert len(list((backups / "snapshots").iterdir())) == 2
    drill = _run(data, "backup", "drill", "--from", str(backups))
    assert drill.exit_code == 0, drill.output
    assert ids


def test_a_snapshot_copy_of_the_database_keeps_no_wrapped_data_key(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    """The copy's wrapped keys are escrowed apart, then erased from its file (secure delete and
    VACUUM): no byte of any of them is left in the copy."""
    services, _ = live
    with services.engine.connect() as conn:
        wrapped = [w for w in conn.execute(select(data_key.c.wrapped)).scalars() if w]
    assert len(wrapped) >= 2
    copy = tmp_path / "copy.sqlite3"
    copy_sqlite(sqlite_path(services.engine), copy)
    assert all(w in copy.read_bytes() for w in wrapped)  # the control: the copy had them
    escrow: dict[str, bytes] = {}
    live_keys, destroyed = strip_data_keys(
        copy, services.crypto.backup_keys(), escrow.__contains__, escrow.__setitem__
    )
    assert (live_keys, destroyed) == (len(wrapped), [])
    assert len(escrow) == len(wrapped)
    content = copy.read_bytes()
    assert not any(w in content or w[12:28] in content for w in wrapped)


@pytest.mark.slow  # builds a small synthetic store in a subprocess (~15 s on a busy machine)
def test_the_backup_benchmark_runs_and_prints_its_figures(
    tmp_path: Path, forks: ForkServer
) -> None:
    root = Path(__file__).resolve().parents[2]
    # `python benchmarks/backup.py`, forked from a parent that imported carnet once; --fork: its
    # backup, restore and drill commands are forked from it in turn, not four new interpreters.
    done = forks.run(
        str(root / "benchmarks" / "backup.py"), ["--patients", "1", "--fork"], cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reproduce: .venv/bin/python benchmarks/backup.py --patients 1" in done.stdout
    assert re.search(r"^restore\s+\d+\.\d+", done.stdout, re.M), done.stdout


def test_a_snapshot_taken_before_a_rotation_restores_after_the_old_key_is_retired(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    services, ids = live
    data, backups = services.settings.data_dir, tmp_path / "backups"
    before = _run(data, "backup", "--to", str(backups), "--jurisdiction", "FR")
    assert before.exit_code == 0, before.output
    assert _run(data, "keys", "rotate").exit_code == 0
    # The next backup escrows every key under its new version and drops the old escrows, so
    # that the old version can be retired without losing any snapshot.
    after = _run(data, "backup", "--to", str(backups), "--jurisdiction", "FR")
    assert after.exit_code == 0, after.output
    retired = _run(data, "keys", "retire", "1")
    assert retired.exit_code == 0, retired.output
    [old_id] = _snapshot_ids(before.output)
    restored = tmp_path / "restored"
    shutil.copy(services.settings.key_file, tmp_path / "master.key")
    for extra in services.settings.key_file.parent.glob("master.key.wrap-*"):
        shutil.copy(extra, tmp_path / extra.name)
    result = _run(
        restored, "restore", old_id, "--from", str(backups), key_file=tmp_path / "master.key"
    )
    assert result.exit_code == 0, result.output
    again = build_services(make_settings(restored).with_(key_file=tmp_path / "master.key"))
    try:
        read = again.fhir.read("Patient", ids["kept"], ctx=AS_LOCAL_OPERATOR)
        assert read.body is not None and read.body["name"][0]["family"] == FAMILY
    finally:
        again.close()
    drill = _run(data, "backup", "drill", "--from", str(backups))
    assert drill.exit_code == 0, drill.output


def test_the_free_pages_of_the_live_file_never_reach_a_snapshot_copy(
    tmp_path: Path, live: tuple[Services, dict[str, str]]
) -> None:
    """A SQLite built without secure delete leaves freed pages as they were (a shredded key, a
    deleted row); the snapshot's copy of the database is rebuilt and carries none of them, nor
    any wrapped key, and leaves no journal of the pages it erased."""
    services, _ = live
    source = sqlite_path(services.engine)
    marker = b"FREED-PAGE-MARKER-" * 200
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA secure_delete = OFF")
        conn.execute("CREATE TABLE freed_by_the_test (x BLOB)")
        conn.executemany("INSERT INTO freed_by_the_test VALUES (?)", [(marker,)] * 20)
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA secure_delete = OFF")
        conn.execute("DROP TABLE freed_by_the_test")
        wrapped = [w for (w,) in conn.execute("SELECT wrapped FROM data_key") if w]
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 0
    pages = tmp_path / "pages.sqlite3"  # the control: a page-for-page copy still has them
    with sqlite3.connect(source) as live_db, sqlite3.connect(pages) as page_copy:
        live_db.backup(page_copy)
    assert marker[:64] in pages.read_bytes()
    copy = tmp_path / "copy.sqlite3"
    copy_sqlite(source, copy)
    escrow: dict[str, bytes] = {}
    strip_data_keys(copy, services.crypto.backup_keys(), escrow.__contains__, escrow.__setitem__)
    content = copy.read_bytes()
    assert marker[:18] not in content
    assert wrapped and not any(w in content or w[12:28] in content for w in wrapped)
    assert not (tmp_path / "copy.sqlite3-journal").exists()
