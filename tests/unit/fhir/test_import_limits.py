"""Import limits: decompressed size, compression ratio and line length, all read as a stream."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import orjson
import pytest

from carnet.app import Services
from carnet.fhir.import_files import ImportLimits, fingerprint
from carnet.fhir.importer import Importer
from carnet.fhir.operations.models import import_progress
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke
from tests.support.gzip_bomb import MIB, write_gzip_bomb

PATIENT = orjson.dumps({"resourceType": "Patient", "id": "before-the-bomb", "gender": "female"})


def _complete(services: Services, path: Path) -> bool:
    with services.engine.connect() as conn:
        row = conn.execute(
            import_progress.select().where(import_progress.c.source_key == fingerprint(path))
        ).first()
    return bool(row and row.complete)


def test_import_gzip_bomb_is_refused_without_exhausting_memory(
    sqlite_services: Services, tmp_path: Path
) -> None:
    bomb = write_gzip_bomb(tmp_path / "Patient.ndjson.gz", PATIENT + b"\n")
    assert bomb.stat().st_size < MIB  # 400 MiB decompressed

    tracemalloc.start()
    try:
        report = Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run([bomb])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 16 * MIB
    assert report.stored == 1  # the line before the bomb
    [rejection] = report.rejected
    assert (rejection.source, rejection.status) == ("Patient.ndjson.gz", 413)
    assert "import_max_compression_ratio" in rejection.reason
    assert not _complete(sqlite_services, bomb)  # a re-run with a higher limit goes on


def test_json_gzip_bomb_is_refused_without_exhausting_memory(
    sqlite_services: Services, tmp_path: Path
) -> None:
    bomb = write_gzip_bomb(tmp_path / "bundle.json.gz", b'{"resourceType": "Bundle", "x": "', 100)
    tracemalloc.start()
    try:
        report = Importer(sqlite_services.fhir, ctx=AS_LOCAL_OPERATOR).run([bomb])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB
    assert [(r.status, "import_max_compression_ratio" in r.reason) for r in report.rejected] == [
        (413, True)
    ]


def test_line_longer_than_the_limit_is_refused_never_held_whole(
    sqlite_services: Services, tmp_path: Path
) -> None:
    path = tmp_path / "Patient.ndjson"  # not compressed: only the line limit can stop it
    path.write_bytes(
        PATIENT + b"\n" + b"x" * (8 * MIB) + b"\n" + PATIENT.replace(b"before", b"after")
    )
    limits = ImportLimits(max_line_bytes=MIB)

    tracemalloc.start()
    try:
        report = Importer(sqlite_services.fhir, limits=limits, ctx=AS_LOCAL_OPERATOR).run([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 4 * MIB
    assert report.stored == 1
    [rejection] = report.rejected
    assert rejection.status == 413
    assert rejection.reason == f"line 2 is longer than import_max_line_bytes ({MIB} bytes)"


@pytest.mark.slow  # a large decompressed file
def test_decompressed_size_limit_rejects_the_file(
    sqlite_services: Services, tmp_path: Path
) -> None:
    path = tmp_path / "Patient.ndjson.gz"
    # The rule does not depend on the size: a limit of two read chunks (64 KiB each) on a file
    # of about three proves it (the lines before the limit stored, in several batches; the file
    # refused where it broke the limit).
    lines = [
        orjson.dumps({"resourceType": "Patient", "id": f"p{i}", "gender": "male"})
        for i in range(3000)
    ]
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    limits = ImportLimits(max_decompressed_bytes=100_000)
    report = Importer(
        sqlite_services.fhir, batch_size=100, limits=limits, ctx=AS_LOCAL_OPERATOR
    ).run([path])
    assert 100 < report.stored < 3000
    assert [r.status for r in report.rejected] == [413]
    assert "import_max_decompressed_bytes (100000 bytes)" in report.rejected[0].reason


def test_carnet_import_applies_the_limit_settings(tmp_path: Path) -> None:
    path = tmp_path / "Patient.ndjson.gz"
    path.write_bytes(gzip.compress(PATIENT + b"\n" + b"y" * (2 * MIB) + b"\n"))
    env = {
        "CARNET_DATA_DIR": str(tmp_path / "data"),
        "CARNET_DATABASE_URL": "",
        "CARNET_IMPORT_MAX_LINE_BYTES": str(MIB),
        "CARNET_IMPORT_MAX_COMPRESSION_RATIO": "5000",  # so that the line limit is what stops it
        "COLUMNS": "200",
    }
    result = invoke(["import", str(path)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "stored 1, rejected 1" in result.output
    assert f"413 line 2 is longer than import_max_line_bytes ({MIB} bytes)" in result.output
