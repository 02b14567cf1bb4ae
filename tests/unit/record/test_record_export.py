"""My data (EHDS art. 7): the whole record as the person may read it, a FHIR Bundle and the
documents' content as files, in one zip; never another person's record; what closing keeps."""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, datetime

import orjson
import pytest

from carnet.app import Services
from carnet.record.export import ExportUnavailableError, RecordExport
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.unit.record.controls_setup import document, small_record

PDF = b"%PDF-1.4\n% un compte rendu\n%%EOF\n"


def test_export_holds_the_bundle_and_the_documents_as_files(services: Services) -> None:
    record = small_record(services)
    with_pdf = document(record.patient)
    with_pdf["content"] = [
        {"attachment": {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode()}}
    ]
    pdf_id = services.fhir.create(
        "DocumentReference", with_pdf, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    data = RecordExport(services.fhir).archive(record.as_patient, record.patient)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert {"README.txt", "record.json"} <= set(archive.namelist())
    bundle = orjson.loads(archive.read("record.json"))
    ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]}
    assert {("Patient", record.patient), ("DocumentReference", record.doc)} <= ids
    assert archive.read(f"documents/DocumentReference-{pdf_id}.pdf") == PDF
    assert all(
        e["resource"].get("subject", {}).get("reference", "") in ("", f"Patient/{record.patient}")
        for e in bundle["entry"]
    )


def test_export_of_another_persons_record_answers_as_missing(services: Services) -> None:
    record = small_record(services)
    with pytest.raises(ExportUnavailableError):
        RecordExport(services.fhir).archive(record.as_other, record.patient)


def test_closure_terms_say_until_when_data_is_kept(services: Services) -> None:
    closed = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)
    assert services.record.retention_end(closed).year == 2026 + int(
        services.settings.record_retention_years
    )
