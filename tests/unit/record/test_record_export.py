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
from carnet.demo.pdf import make_pdf
from carnet.record.export import ExportUnavailableError, RecordExport
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.module_services import module_services_fixture
from tests.unit.record.controls_setup import Record, document, small_record

PDF = make_pdf("Compte rendu", ["Un compte rendu."])  # a real PDF: deposits are screened


shared = module_services_fixture()  # one record, read by each test


@pytest.fixture(scope="module")
def record(shared: Services) -> Record:
    return small_record(shared)


def test_export_holds_the_bundle_and_the_documents_as_files(
    shared: Services, record: Record
) -> None:
    services = shared
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


def test_export_of_another_persons_record_answers_as_missing(
    shared: Services, record: Record
) -> None:
    with pytest.raises(ExportUnavailableError):
        RecordExport(shared.fhir).archive(record.as_other, record.patient)


def test_closure_terms_say_until_when_data_is_kept(shared: Services) -> None:
    services = shared
    closed = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)
    assert services.record.retention_end(closed).year == 2026 + int(
        services.settings.record_retention_years
    )
