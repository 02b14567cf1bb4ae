"""Screening from the command line: `carnet screen` answers in one line, and `carnet import`
refuses a hostile attachment like any other deposit (rejected, never stored)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from typer.testing import Result

from tests.support import hostile_files
from tests.support.cli import invoke


def _run(data_dir: Path, *args: str) -> Result:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "200"}
    return invoke(args, env=env, catch_exceptions=False)


def test_screen_answers_in_one_line_and_fails_on_a_refused_file(tmp_path: Path) -> None:
    polyglot = tmp_path / "letter.pdf"
    polyglot.write_bytes(hostile_files.polyglot_pdf_zip())
    refused = _run(tmp_path / "data", "screen", str(polyglot), "--type", "application/pdf")
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [
        "error: refused (polyglot): the file also reads as a ZIP archive"
    ]
    photo = tmp_path / "photo.png"
    photo.write_bytes(hostile_files.png_with_gps_exif())
    accepted = _run(tmp_path / "data", "screen", str(photo))
    assert accepted.exit_code == 0, accepted.output
    assert re.fullmatch(
        r"accepted: image/png, \d+ bytes \(re-encoded without metadata\)", accepted.output.strip()
    )


def test_import_rejects_a_hostile_attachment_and_stores_nothing_of_it(tmp_path: Path) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lemoine"}]}
    document = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(hostile_files.pdf_with_embedded_file()).decode(),
                }
            }
        ],
    }
    source = tmp_path / "deposit.ndjson"
    source.write_text("\n".join(json.dumps(r) for r in (patient, document)) + "\n")
    result = _run(tmp_path / "data", "import", str(source))
    assert "files 1, resources read 2, stored 1, rejected 1" in result.output.splitlines()
    assert (
        "  rejected deposit.ndjson:2: 422 value: DocumentReference.content[0].attachment.data"
        in result.output.splitlines()
    )
    blobs = tmp_path / "data" / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]
