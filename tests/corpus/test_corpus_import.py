"""The external corpus (../shared/corpus, see its README.md) through the importer, counts asserted.

Synthea (202 gzipped transaction Bundles, 62,791 resources) is imported once per module on SQLite
(about 45 s). The three small corpora are imported, each into a fresh database, on SQLite and on
the throwaway PostgreSQL, and must give the same report on both.

Every expected rejection carries the reason the FHIR R4 specification (or a documented Carnet
rule, see carnet/fhir/importer.py) gives for refusing it. Anything else rejected fails the test.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carnet.app import Services, build_services
from carnet.fhir.import_files import discover
from carnet.fhir.importer import Importer, ImportReport, Rejection
from tests.conftest import CORPUS, make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.postgres import ThrowawayPostgres

BASE = "http://127.0.0.1/fhir"
_db = itertools.count()

# -- Synthea --------------------------------------------------------------------------------------

# Measured, and equal to the corpus README. Note that the README calls these the counts "across
# the 200 patient bundles", but 102 Organizations and 102 Practitioners of the totals come from
# the two shared bundles (hospitalInformation…, practitionerInformation…): the 200 patient
# bundles hold 62,587 resources, including 329 Organizations and 329 Practitioners.
SYNTHEA_BY_TYPE = {
    "Observation": 29185,
    "Claim": 7560,
    "Encounter": 5946,
    "ExplanationOfBenefit": 5946,
    "Procedure": 4472,
    "Immunization": 2311,
    "DiagnosticReport": 2089,
    "MedicationRequest": 1614,
    "Condition": 1450,
    "CarePlan": 559,
    "Organization": 329 + 102,
    "Practitioner": 329 + 102,
    "Goal": 391,
    "Patient": 200,
    "AllergyIntolerance": 120,
    "ImagingStudy": 86,
}
SYNTHEA_TOTAL = 62791
# Stored once each: every Organization/Practitioner a patient bundle re-posts carries the
# identifier of one of the 102 in the shared bundles (conditional create, Importer.dedupe_shared).
SYNTHEA_DISTINCT_SHARED = 102
SYNTHEA_FILES = 202
SYNTHEA_BODY_HEIGHTS = 1702  # Observations coded LOINC 8302-2, counted from the files
SYNTHEA_FEMALE = 86  # Patients with gender female, counted from the files
SAMPLE_PATIENT_FILE = "Adan_Pulido_7694b55e-b670-44a5-b426-c56027e97986.json.gz"

# -- fhir-examples ------------------------------------------------------------------------------

FHIR_EXAMPLES_FILES = 269
# read = resources in single files + every entry of transaction/batch Bundles (GETs included)
#        + one per document/message/reply Bundle + the resources of collection/searchset Bundles.
FHIR_EXAMPLES_READ = 553
FHIR_EXAMPLES_STORED = 473
FHIR_EXAMPLES_BY_TYPE = {
    "AllergyIntolerance": 6,
    "Bundle": 20,  # 19 single Bundle examples of other types + 1 document Bundle (Bundle-father)
    "Composition": 2,
    "Condition": 12,
    "DiagnosticReport": 13,
    "DocumentReference": 1,
    "Encounter": 10,
    "FamilyMemberHistory": 1,
    "Immunization": 5,
    "Location": 2,
    "Medication": 23,
    "MedicationRequest": 40,
    "MedicationStatement": 7,
    # 206 written before an import kept items in their records: Bundle-report.json's 13
    # Observations o1..o13 replaced Bundle-ghp.json's o1..o13 of Patient/pat2 (see below);
    # 193 before an item needed its Patient to exist (21 name Patients absent from the corpus).
    "Observation": 172,
    "Organization": 13,
    # 38 writes but 37 Patients: Bundle-bundle-references.json carries Patient/45 twice
    # (meta.versionId 1 then 2), stored as two versions of one resource, and the refused
    # transaction Bundle-xds.json held Patient/a2 (below).
    "Patient": 38,
    "Practitioner": 73,
    "PractitionerRole": 15,
    "Procedure": 16,
    "ServiceRequest": 1,  # ServiceRequest/req is three patients' in three Bundles (below)
    "Specimen": 3,
}
FHIR_EXAMPLES_PATIENTS = 37  # Patient/a2 came in the refused Bundle-xds.json

_NOT_DATA = "a {kind} Bundle records a server's replies, not data to store"
FHIR_EXAMPLES_REJECTED = [
    # Patient files are imported first (Importer._patients_first: an item joins an existing
    # record), then the others in name order. An item naming a Patient the corpus does not hold
    # (Patient/347, Patient/genetics-example1, Patient/infant...) is refused with 400 and the
    # element at fault, as HAPI FHIR refuses a reference to a missing resource: stored, it would
    # join whichever Patient later takes that id. A searchset or collection is one transaction,
    # so Bundle-bundle-example.json (MedicationRequests for Patient/347) is refused whole, and so
    # are the transactions Bundle-hla-1.json (with its 12 MolecularSequences and a Binary, so
    # none of either is stored) and Bundle-xds.json.
    Rejection(
        "Bundle-bundle-example.json entry 0 (batch)", 400, "not-found: MedicationRequest.subject"
    ),
    # batch-response / transaction-response: R4 bundle.html#bundle-types defines them as the
    # server's response to a batch/transaction, i.e. replies, not content to store (documented
    # in carnet/fhir/importer.py).
    Rejection(
        "Bundle-bundle-response-medsallergies.json", 422, _NOT_DATA.format(kind="batch-response")
    ),
    Rejection(
        "Bundle-bundle-response-simplesummary.json", 422, _NOT_DATA.format(kind="batch-response")
    ),
    Rejection("Bundle-bundle-response.json", 422, _NOT_DATA.format(kind="transaction-response")),
    # Transaction with an entry POST ValueSet/$lookup, an operation Carnet does not implement.
    # A transaction succeeds or fails as a whole (R4 http.html#trules: "if any resource
    # interaction fails, then the entire transaction fails"), so nothing of it is stored.
    Rejection(
        "Bundle-bundle-transaction.json (transaction)",
        400,
        "not-supported: Bundle.entry[7].request.url",
    ),
    # Two sources using the same ids: Bundle-f001.json, Bundle-f202.json and Bundle-micro.json
    # each hold a ServiceRequest/req for their own patient (f001, f201, example), and
    # Bundle-report.json's Observations o1..o13 (a leukocyte count...; no subject) reuse the
    # ids of Patient/pat2's results in Bundle-ghp.json (o1 is her sodium). Stored as they came,
    # each file's item replaced the earlier one and moved it into another record (or out of
    # hers). An import never moves an item between records: each is set aside, the stored one
    # kept, the rest of its Bundle stored.
    Rejection("Bundle-f202.json entry 1", 409, "conflict: ServiceRequest.subject"),
    Rejection("Bundle-hla-1.json (transaction)", 400, "not-found: DiagnosticReport.subject"),
    Rejection("Bundle-micro.json entry 26", 409, "conflict: ServiceRequest.subject"),
    *(
        Rejection(f"Bundle-report.json entry {i}", 409, "conflict: Observation")
        for i in range(1, 14)
    ),
    Rejection("Bundle-xds.json (transaction)", 400, "not-found: DocumentReference.subject"),
    # presentedForm declares contentType application/pdf, but the base64 decodes to the 17 ASCII
    # bytes "pdfInBase64Binary", not a PDF. Attachment.contentType "identifies the type of the
    # data in the attachment" (R4 datatypes.html#Attachment); Carnet refuses content that does
    # not match its declared type (carnet/fhir/attachments.py, 422).
    Rejection(
        "DiagnosticReport-example-pgx.json (batch)",
        422,
        "value: DiagnosticReport.presentedForm[0].contentType",
    ),
    Rejection("DiagnosticReport-pap.json (batch)", 400, "not-found: DiagnosticReport.subject"),
    *(
        Rejection(f"Observation-{name}.json (batch)", 400, "not-found: Observation.subject")
        for name in (
            "656",
            "bgpanel",
            "bloodgroup",
            "example-diplotype1",
            "example-genetics-brcapat",
            "example-haplotype1",
            "example-haplotype2",
            "example-phenotype",
            "rhstatus",
            "secondsmoke",
            "trachcare",
            "vomiting",
        )
    ),
]

# -- IPS and FR Core ---------------------------------------------------------------------------------

IPS_BY_TYPE = {
    "AllergyIntolerance": 3,
    "Bundle": 5,  # the 5 IPS document Bundles, each stored whole (a document is one unit)
    "Composition": 1,
    "Condition": 1,
    "Device": 2,
    "DeviceUseStatement": 1,
    "DiagnosticReport": 1,
    "Flag": 1,
    "ImagingStudy": 1,
    "Immunization": 1,
    "Medication": 1,
    "MedicationRequest": 1,
    "MedicationStatement": 1,
    "Observation": 13,
    "Organization": 3,
    "Patient": 3,
    "Practitioner": 1,
    "PractitionerRole": 1,
    "Procedure": 2,
    "Specimen": 1,
}
FR_CORE_BY_TYPE = {"Encounter": 1, "Patient": 2}
# FR Core's example carries a NIR whose check key is wrong: an INS that breaks the NIR rules is
# refused at every entry, never stored (docs/identity.md, "INS rules").
FR_CORE_REJECTED = [
    Rejection(
        "Patient-Martine-Selfiesante.json (batch)",
        422,
        "value: Patient.identifier",  # the path of the rejected value, never the value
    )
]

SMALL = {
    # corpus: (files, read, stored, by_type, rejected, distinct Patients)
    "fhir-examples": (
        FHIR_EXAMPLES_FILES,
        FHIR_EXAMPLES_READ,
        FHIR_EXAMPLES_STORED,
        FHIR_EXAMPLES_BY_TYPE,
        FHIR_EXAMPLES_REJECTED,
        FHIR_EXAMPLES_PATIENTS,
    ),
    "ips": (44, 44, 44, IPS_BY_TYPE, [], 3),
    "fr-core": (4, 4, 3, FR_CORE_BY_TYPE, FR_CORE_REJECTED, 2),
}


def _count(services: Services, res_type: str, params: list[tuple[str, str]] | None = None) -> int:
    found = services.fhir.search(
        BASE, res_type, [*(params or []), ("_summary", "count")], ctx=AS_LOCAL_OPERATOR
    )
    return int(found["total"])


def _import(services: Services, *folders: str) -> ImportReport:
    return Importer(services.fhir, ctx=AS_LOCAL_OPERATOR).run(
        discover([CORPUS / f for f in folders])
    )


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, ImportReport]]:
    services = build_services(make_settings(tmp_path_factory.mktemp("synthea") / "data"))
    report = _import(services, "synthea")
    yield services, report
    services.close()


@pytest.fixture(scope="module")
def small_imports(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, str], tuple[Services, ImportReport]]]:
    """(backend, corpus) -> services and report, built on first use, each in its own database."""
    cache: dict[tuple[str, str], tuple[Services, ImportReport]] = {}
    yield cache
    for services, _ in cache.values():
        services.close()


@pytest.fixture(params=["sqlite", "postgres"])
def small_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _small(
    request: pytest.FixtureRequest,
    cache: dict[tuple[str, str], tuple[Services, ImportReport]],
    backend: str,
    corpus: str,
) -> tuple[Services, ImportReport]:
    if (backend, corpus) not in cache:
        url = ""
        if backend == "postgres":
            pg: ThrowawayPostgres = request.getfixturevalue("postgres")
            url = pg.create_database(f"corpus{next(_db)}_{corpus.replace('-', '_')}")
        tmp: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        services = build_services(make_settings(tmp.mktemp(f"{backend}-{corpus}") / "data", url))
        cache[(backend, corpus)] = (services, _import(services, corpus))
    return cache[(backend, corpus)]


# -- Synthea ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_synthea_report(synthea: tuple[Services, ImportReport]) -> None:
    _, report = synthea
    assert report.rejected == []
    assert report.files == SYNTHEA_FILES
    assert report.read == SYNTHEA_TOTAL
    assert report.stored == SYNTHEA_TOTAL
    assert report.by_type == SYNTHEA_BY_TYPE
    assert sum(SYNTHEA_BY_TYPE.values()) == SYNTHEA_TOTAL


@pytest.mark.slow
def test_synthea_searches_see_the_data(synthea: tuple[Services, ImportReport]) -> None:
    services, _ = synthea
    for res_type in ("Patient", "Encounter", "Immunization", "ImagingStudy"):
        assert _count(services, res_type) == SYNTHEA_BY_TYPE[res_type], res_type
    assert _count(services, "Organization") == SYNTHEA_DISTINCT_SHARED
    assert _count(services, "Practitioner") == SYNTHEA_DISTINCT_SHARED
    assert _count(services, "Observation", [("code", "http://loinc.org|8302-2")]) == (
        SYNTHEA_BODY_HEIGHTS
    )
    assert _count(services, "Patient", [("gender", "female")]) == SYNTHEA_FEMALE
    assert _count(services, "Patient", [("gender", "male")]) == 200 - SYNTHEA_FEMALE


@pytest.mark.slow
def test_synthea_one_patient_end_to_end(synthea: tuple[Services, ImportReport]) -> None:
    """urn:uuid references were rewritten to the server's ids: one patient's data hangs together."""
    services, _ = synthea
    with gzip.open(CORPUS / "synthea" / SAMPLE_PATIENT_FILE) as handle:
        bundle: dict[str, Any] = json.load(handle)
    resources = [e["resource"] for e in bundle["entry"]]
    source = next(r for r in resources if r["resourceType"] == "Patient")
    synthea_id = source["identifier"][0]
    assert synthea_id["system"] == "https://github.com/synthetichealth/synthea"
    found = services.fhir.search(
        BASE,
        "Patient",
        [("identifier", f"{synthea_id['system']}|{synthea_id['value']}")],
        ctx=AS_LOCAL_OPERATOR,
    )
    assert found["total"] == 1
    patient = found["entry"][0]["resource"]
    assert patient["name"][0]["family"] == "Pulido"
    assert patient["name"][0]["given"] == ["Adán"]
    assert _count(services, "Patient", [("family", "pulido"), ("given", "adan")]) >= 1
    pid = patient["id"]
    assert pid != source["id"]  # POST entries get server-assigned ids
    # `patient` exists on all four types (Immunization has no `subject` parameter in R4; an
    # unknown parameter is ignored in lenient mode, which would count every Immunization).
    for res_type in ("Observation", "Encounter", "Condition", "Immunization", "Claim"):
        expected = sum(1 for r in resources if r["resourceType"] == res_type)
        assert expected > 0
        assert _count(services, res_type, [("patient", f"Patient/{pid}")]) == expected, res_type
    assert _count(services, "Observation", [("subject", f"Patient/{pid}")]) == sum(
        1 for r in resources if r["resourceType"] == "Observation"
    )
    with services.fhir.repo.unit(write=False) as unit:
        assert unit.current("Patient", pid) is not None


# -- small corpora, SQLite and PostgreSQL --------------------------------------------------------------


@pytest.mark.parametrize("corpus", list(SMALL))
def test_small_corpus_report(
    request: pytest.FixtureRequest,
    small_imports: dict[tuple[str, str], tuple[Services, ImportReport]],
    small_backend: str,
    corpus: str,
) -> None:
    _, report = _small(request, small_imports, small_backend, corpus)
    files, read, stored, by_type, rejected, _patients = SMALL[corpus]
    assert report.rejected == rejected
    assert report.files == files
    assert report.read == read
    assert report.stored == stored
    assert report.by_type == by_type
    assert sum(by_type.values()) == stored


@pytest.mark.parametrize("corpus", list(SMALL))
def test_small_corpus_searches(
    request: pytest.FixtureRequest,
    small_imports: dict[tuple[str, str], tuple[Services, ImportReport]],
    small_backend: str,
    corpus: str,
) -> None:
    services, _ = _small(request, small_imports, small_backend, corpus)
    assert _count(services, "Patient") == SMALL[corpus][5]


def test_fhir_examples_spot_checks(
    request: pytest.FixtureRequest,
    small_imports: dict[tuple[str, str], tuple[Services, ImportReport]],
    small_backend: str,
) -> None:
    services, _ = _small(request, small_imports, small_backend, "fhir-examples")
    fhir = services.fhir
    example = fhir.read("Patient", "example", ctx=AS_LOCAL_OPERATOR).body
    assert example is not None
    assert example["name"][0]["family"] == "Chalmers"
    assert _count(services, "Patient", [("family", "chalmers")]) >= 1
    # Patient/45 was given twice in one collection: two versions, the second current.
    assert fhir.read("Patient", "45", ctx=AS_LOCAL_OPERATOR).version == 2
    # Nothing of the refused transaction was stored (all or nothing).
    assert _count(services, "Patient", [("identifier", "http:/example.org/fhir/ids|234234")]) == 0
    # The refused pgx report is absent; other DiagnosticReports are there.
    from carnet.fhir.errors import FhirError

    with pytest.raises(FhirError) as info:
        fhir.read("DiagnosticReport", "example-pgx", ctx=AS_LOCAL_OPERATOR)
    assert info.value.status == 404
    assert _count(services, "DiagnosticReport") == FHIR_EXAMPLES_BY_TYPE["DiagnosticReport"]


def test_fr_core_ins_nir_search(
    request: pytest.FixtureRequest,
    small_imports: dict[tuple[str, str], tuple[Services, ImportReport]],
    small_backend: str,
) -> None:
    services, _ = _small(request, small_imports, small_backend, "fr-core")
    found = services.fhir.search(
        BASE,
        "Patient",
        [("identifier", "urn:oid:1.2.250.1.213.1.4.8|179125612113516")],
        ctx=AS_LOCAL_OPERATOR,
    )
    # Martine's NIR has a wrong check key: refused on import, so neither stored nor found.
    assert found["total"] == 0
    assert _count(services, "Patient", [("family", "selfiesante")]) == 0
    # The other example's test INS (.10) is a valid NIR: stored and found.
    test_ins = "urn:oid:1.2.250.1.213.1.4.10|162126587913677"
    assert _count(services, "Patient", [("identifier", test_ins)]) == 1
    assert _count(services, "Patient", [("name", "SAYEH")]) == 1


def test_reimport_is_stable(tmp_path: Path) -> None:
    """Importing a corpus twice stores new versions of resources with ids, no duplicates."""
    services = build_services(make_settings(tmp_path / "data"))
    try:
        first = _import(services, "fr-core")
        resumed = _import(services, "fr-core")  # committed files are skipped
        assert resumed.stored == 0
        assert resumed.skipped == resumed.files
        files = discover([CORPUS / "fr-core"])
        second = Importer(services.fhir, resume=False, ctx=AS_LOCAL_OPERATOR).run(files)
        assert first.by_type == second.by_type == FR_CORE_BY_TYPE
        assert _count(services, "Patient") == 2
    finally:
        services.close()
