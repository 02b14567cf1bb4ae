"""Importer: NDJSON (plain and gzipped), folders, bad lines, resumable re-runs."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from carnet.app import Services
from carnet.fhir.importer import Importer, discover


def _patient(i: int) -> dict[str, object]:
    return {"resourceType": "Patient", "id": f"p{i}", "gender": "female", "birthDate": "1990-01-01"}


def _obs(i: int) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/p{i}"},
    }


def _count(services: Services, res_type: str) -> int:
    total = services.fhir.search("urn:t", res_type, [("_summary", "count")])["total"]
    return int(total)


def test_ndjson_plain_and_gzipped_with_bad_lines(sqlite_services: Services, tmp_path: Path) -> None:
    plain = tmp_path / "Patient.ndjson"
    lines = [orjson.dumps(_patient(i)) for i in range(7)]
    lines.insert(3, b"{not json")
    lines.insert(5, orjson.dumps({"resourceType": "Patient", "gender": "robot"}))
    plain.write_bytes(b"\n".join(lines) + b"\n\n")
    zipped = tmp_path / "Observation.ndjson.gz"
    zipped.write_bytes(gzip.compress(b"\n".join(orjson.dumps(_obs(i)) for i in range(7))))

    report = Importer(sqlite_services.fhir, batch_size=3).run(discover([tmp_path]))

    assert report.files == 2
    assert report.read == 16
    assert report.stored == 14
    assert report.by_type == {"Patient": 7, "Observation": 7}
    reasons = sorted((r.source, r.status) for r in report.rejected)
    assert reasons == [("Patient.ndjson:4", 400), ("Patient.ndjson:6", 422)]
    assert _count(sqlite_services, "Patient") == 7
    assert _count(sqlite_services, "Observation") == 7


def test_rerun_changes_nothing(sqlite_services: Services, tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(_patient(i)) for i in range(5)))
    Importer(sqlite_services.fhir).run([path])
    Importer(sqlite_services.fhir).run([path])
    assert _count(sqlite_services, "Patient") == 5
    assert sqlite_services.fhir.read("Patient", "p0").version == 1  # an unchanged update is a no-op
    history = sqlite_services.fhir.history("urn:t", "Patient", None, [])
    assert history["total"] == 5


def test_discover_refuses_unknown_files(tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(ValueError, match=r"not a \.json"):
        discover([odd])
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "missing"])


def test_reply_bundles_are_rejected_with_reason(sqlite_services: Services, tmp_path: Path) -> None:
    path = tmp_path / "reply.json"
    path.write_bytes(
        orjson.dumps(
            {
                "resourceType": "Bundle",
                "type": "batch-response",
                "entry": [{"response": {"status": "200"}}],
            }
        )
    )
    report = Importer(sqlite_services.fhir).run([path])
    assert report.stored == 0
    assert [r.status for r in report.rejected] == [422]
    assert "server's replies" in report.rejected[0].reason
