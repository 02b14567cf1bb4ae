"""The FHIR-to-OMOP IG 2.0.0 ballot's conformance rules (F2O), one test per SHALL, on one store
and one DuckDB extraction built once for the module."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.ipc as ipc
import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.hub.omop.cdm import TABLES
from carnet.hub.omop.models import hub_extraction
from carnet.hub.omop.service import extract
from carnet.hub.omop.spec import ExtractionResult
from carnet.hub.omop.vocabulary import BUILTIN_VERSION, LOCAL_CONCEPT_START, load_athena
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.hub_store import (
    LOINC,
    SNOMED,
    PersonSpec,
    add_person,
    create,
    extract_values,
    open_hub_services,
    spec_for,
)
from tests.support.migrated_store import SqliteTemplate

ATC = "http://www.whocc.no/atc"
# OMOP ids the CDM itself defines (types, gender, visits): not vocabulary content.
CDM_CONCEPTS = {0, 32817, 8507, 8532, 9201, 9202, 9203, 581476}


@dataclass
class Store:
    services: Services
    patients: list[str]
    resource_ids: list[str]
    result: ExtractionResult
    out: Path


def _events(services: Services, pid: str) -> list[str]:
    subject = {"reference": f"Patient/{pid}"}
    ids = []
    encounter = create(
        services,
        "Encounter",
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject,
            "period": {"start": "2022-01-10T09:00:00+01:00", "end": "2022-01-10T10:00:00+01:00"},
        },
    )
    ids.append(encounter)
    common: dict[str, Any] = {"subject": subject}
    bodies: list[tuple[str, dict[str, Any]]] = [
        (
            "Condition",
            {
                "code": {"coding": [{"system": SNOMED, "code": "38341003"}]},
                "onsetDateTime": "2022-01-10",
                "encounter": {"reference": f"Encounter/{encounter}"},
            },
        ),
        (
            "Condition",
            {
                "verificationStatus": {"coding": [{"code": "entered-in-error"}]},
                "code": {"coding": [{"system": SNOMED, "code": "22298006"}]},
                "onsetDateTime": "2022-01-11",
            },
        ),
        (
            "Procedure",
            {
                "status": "not-done",
                "code": {"coding": [{"system": SNOMED, "code": "80146002"}]},
                "performedDateTime": "2022-01-12",
            },
        ),
        (
            "Procedure",
            {
                "status": "completed",
                "code": {"coding": [{"system": SNOMED, "code": "73761001"}]},
                "performedDateTime": "2022-01-13",
            },
        ),
        (
            "MedicationRequest",
            {
                "status": "cancelled",
                "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "C09AA05"}]},
                "authoredOn": "2022-01-10",
            },
        ),
        (
            "MedicationRequest",
            {
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "C10AA01"}]},
                "authoredOn": "2022-01-10",
                "note": [{"text": "patient lives alone"}],
                "dosageInstruction": [{"text": "one tablet at night, free text"}],
                "dispenseRequest": {"quantity": {"value": 30}, "numberOfRepeatsAllowed": 2},
            },
        ),
        (
            "Observation",
            {
                "status": "cancelled",
                "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
                "effectiveDateTime": "2022-01-10",
                "valueQuantity": {"value": 6.1, "code": "mmol/L"},
            },
        ),
        (
            "Observation",
            {
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
                "effectiveDateTime": "2022-01-10",
                "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "8517006"}]},
            },
        ),
    ]
    for res_type, body in bodies:
        if res_type in ("MedicationRequest",):
            body = {**body, **common}
        ids.append(create(services, res_type, {"resourceType": res_type, **common, **body}))
    return ids


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("f2o")
    services = open_hub_services(root / "data", migrated_sqlite)
    patients, resource_ids = [], []
    for index in range(3):
        person = PersonSpec(conditions=["44054006"], glucose=[("2022-01-10T08:30:00Z", 5.4)])
        pid = add_person(services, person, index)
        patients.append(pid)
        resource_ids.extend(_events(services, pid))
    died = create(
        services,
        "Patient",
        {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "1930-02-01",
            "deceasedDateTime": "2022-02-02T12:00:00Z",
            "name": [{"family": "Defunt", "given": ["Marcel"]}],
        },
    )
    patients.append(died)
    out = root / "out"
    result = extract(services, AS_LOCAL_OPERATOR, spec_for(out))
    yield Store(services, patients, resource_ids, result, out)
    services.close()


def _concept_columns() -> dict[str, list[str]]:
    return {
        name: [c for c in t.column_names if c.endswith("_concept_id") and "source" not in c]
        for name, t in TABLES.items()
    }


def test_no_identifier_or_resource_id_in_any_source_value(store: Store) -> None:
    """F2O: no Resource.identifier in *_source_value, nor the FHIR ids of anything."""
    secrets = {*store.patients, *store.resource_ids, "MRN-SECRET-0", "MRN-SECRET-1", "COND-0-0"}
    for table, column, value in extract_values(store.result.extract_path):
        if isinstance(value, str):
            assert not any(s in value for s in secrets), (table, column)


def test_no_personal_data_or_free_text_in_omop_tables(store: Store) -> None:
    """F2O: names, addresses, identifiers and free text never reach an OMOP table."""
    forbidden = (
        "Nomdefamille",
        "Prenom",
        "Defunt",
        "Marcel",
        "rue Secrete",
        "Paris",
        "75012",
        "free text",
        "note about",
        "lives alone",
        "secret",
    )
    for table, column, value in extract_values(store.result.extract_path):
        if isinstance(value, str):
            assert not any(f.lower() in value.lower() for f in forbidden), (table, column, value)
        if column in ("sig", "stop_reason", "lot_number", "value_as_string", "person_source_value"):
            assert value is None, (table, column)


def test_fhir_id_mapping_is_kept_encrypted_outside_the_omop_schema(store: Store) -> None:
    """F2O: the FHIR-id mapping lives outside the OMOP schema: in the record store, encrypted."""
    with duckdb.connect(str(store.result.extract_path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == set(TABLES)
    services = store.services
    with services.engine.begin() as conn:
        row = conn.execute(select(hub_extraction.c.id, hub_extraction.c.source_map)).one()
        assert store.resource_ids[1].encode() not in row.source_map  # ciphertext
        plain = services.crypto.data_keys.decrypt(
            conn, "hub:project-a", row.source_map, row.id.encode()
        )
    mapping = ipc.open_file(plain).read_all().to_pylist()
    fhir_ids = {(m["res_type"], m["res_id"]) for m in mapping}
    assert ("Condition", store.resource_ids[1]) in fhir_ids
    assert {m["omop_table"] for m in mapping} >= {"person", "condition_occurrence", "measurement"}


def test_concept_ids_hold_standard_concepts_only_and_0_when_unmapped(store: Store) -> None:
    """F2O: with no vocabulary loaded, every coded *_concept_id is 0 (the CDM's own type,
    gender and visit concepts aside): never a local or non-standard id."""
    with duckdb.connect(str(store.result.extract_path), read_only=True) as con:
        for table, columns in _concept_columns().items():
            for column in columns:
                values = {
                    r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM {table}").fetchall()
                }
                assert values - {None} <= CDM_CONCEPTS, (table, column, values)
        coded = con.execute("SELECT DISTINCT condition_concept_id FROM condition_occurrence")
        assert coded.fetchall() == [(0,)]


def test_unmapped_codes_are_reported_never_silently(store: Store) -> None:
    """F2O: each code that mapped to 0 is in the unmapped-codes report, with its count."""
    with store.result.unmapped_codes_report_path.open() as handle:
        rows = list(csv.DictReader(handle))
    found = {(r["table"], r["source_system"], r["source_code"]): int(r["records"]) for r in rows}
    assert found[("condition_occurrence", SNOMED, "38341003")] == 3
    assert found[("condition_occurrence", SNOMED, "44054006")] == 3
    assert found[("drug_exposure", ATC, "C10AA01")] == 3
    assert found[("measurement", LOINC, "15074-8")] == 3


def test_source_codes_are_kept_verbatim_in_source_values(store: Store) -> None:
    """F2O: the source code as written, in *_source_value."""
    with duckdb.connect(str(store.result.extract_path), read_only=True) as con:
        drugs = {
            r[0] for r in con.execute("SELECT drug_source_value FROM drug_exposure").fetchall()
        }
        procedure_codes = con.execute(
            "SELECT DISTINCT procedure_source_value FROM procedure_occurrence"
        ).fetchall()
        values = con.execute("SELECT DISTINCT value_source_value FROM observation").fetchall()
    assert drugs == {"C10AA01"}
    assert procedure_codes == [("73761001",)]
    assert values == [("8517006",)]


def test_local_concepts_are_at_or_above_two_billion_and_only_as_source_concepts(
    store: Store,
) -> None:
    """F2O: local concepts >= 2,000,000,000; they never appear in a standard *_concept_id."""
    with duckdb.connect(str(store.result.extract_path), read_only=True) as con:
        sources = {
            r[0]
            for r in con.execute(
                "SELECT condition_source_concept_id FROM condition_occurrence UNION ALL "
                "SELECT drug_source_concept_id FROM drug_exposure UNION ALL "
                "SELECT measurement_source_concept_id FROM measurement"
            ).fetchall()
        }
    assert sources and all(s >= LOCAL_CONCEPT_START for s in sources)
    with (store.out / "local_concepts.csv").open() as handle:
        local = list(csv.DictReader(handle))
    assert {int(r["concept_id"]) for r in local} >= sources


def test_vocabulary_version_is_recorded_with_every_run(store: Store) -> None:
    """F2O: the vocabulary version of the run: in the result, the run record and the log."""
    assert store.result.vocabulary_version == BUILTIN_VERSION
    run = json.loads((store.out / "extraction.json").read_text())
    assert run["vocabulary_version"] == BUILTIN_VERSION
    with store.services.engine.connect() as conn:
        logged = conn.execute(select(hub_extraction.c.vocabulary_version)).scalar_one()
    assert logged == BUILTIN_VERSION


def test_cancelled_not_done_and_entered_in_error_records_are_dropped_and_reported(
    store: Store,
) -> None:
    """F2O: such records never enter the extract; the run reports how many of each."""
    assert store.result.dropped_records == {
        "Condition:entered-in-error": 3,
        "MedicationRequest:cancelled": 3,
        "Observation:cancelled": 3,
        "Procedure:not-done": 3,
    }
    with duckdb.connect(str(store.result.extract_path), read_only=True) as con:
        codes = {
            r[0]
            for r in con.execute(
                "SELECT condition_source_value FROM condition_occurrence UNION ALL "
                "SELECT procedure_source_value FROM procedure_occurrence UNION ALL "
                "SELECT drug_source_value FROM drug_exposure UNION ALL "
                "SELECT measurement_source_value FROM measurement"
            ).fetchall()
        }
    assert not codes & {"22298006", "80146002", "C09AA05", "2345-7"}
    assert json.loads((store.out / "extraction.json").read_text())["dropped_records"]


def test_visits_link_their_events_and_death_is_extracted(store: Store) -> None:
    with duckdb.connect(str(store.result.extract_path), read_only=True) as con:
        linked = con.execute(
            "SELECT count(*) FROM condition_occurrence c JOIN visit_occurrence v "
            "USING (visit_occurrence_id) WHERE c.condition_source_value = '38341003'"
        ).fetchone()
        death = con.execute("SELECT death_date FROM death").fetchall()
        visits = con.execute("SELECT DISTINCT visit_concept_id FROM visit_occurrence").fetchall()
    assert linked == (3,)
    assert [str(d[0]) for d in death] == ["2022-02-02"]
    assert visits == [(9202,)]


def _athena(folder: Path) -> Path:
    folder.mkdir()
    header = (
        "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\t"
        "standard_concept\tconcept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
    )
    (folder / "CONCEPT.csv").write_text(
        header
        + "3004501\tGlucose\tMeasurement\tLOINC\tLab Test\tS\t15074-8\t19700101\t20991231\t\n"
        + "1545958\tatorvastatin\tDrug\tATC\tATC 5th\tC\tC10AA01\t19700101\t20991231\t\n"
        + "201826\tDiabetes\tCondition\tSNOMED\tClinical Finding\tS\t44054006\t19700101\t20991231\t\n"
        + "4000000\tOld\tCondition\tSNOMED\tClinical Finding\tS\t38341003\t19700101\t20991231\tU\n"
    )
    (folder / "CONCEPT_RELATIONSHIP.csv").write_text(
        "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
        "1545958\t1545999\tMaps to\t19700101\t20991231\t\n"  # to a concept that is not standard
    )
    (folder / "VOCABULARY.csv").write_text(
        "vocabulary_id\tvocabulary_name\tvocabulary_reference\tvocabulary_version\tvocabulary_concept_id\n"
        "None\tOMOP Standardized Vocabularies\tOMOP generated\tv5.0 30-AUG-26\t44819096\n"
    )
    return folder


def test_athena_remap_puts_standard_concepts_only(store: Store, tmp_path: Path) -> None:
    """An operator's Athena download: standard codes map, a classification code (ATC) and a
    retired concept do not (0, reported), and the run records Athena's version."""
    vocabulary = load_athena(_athena(tmp_path / "athena"))
    spec = spec_for(
        tmp_path / "out",
        project_id="project-athena",
        tables=frozenset({"person", "measurement", "condition_occurrence", "drug_exposure"}),
    )
    result = extract(store.services, AS_LOCAL_OPERATOR, spec, vocabulary=vocabulary)
    assert result.vocabulary_version == "athena v5.0 30-AUG-26"
    with duckdb.connect(str(result.extract_path), read_only=True) as con:
        glucose = con.execute(
            "SELECT DISTINCT measurement_concept_id, measurement_source_concept_id FROM measurement"
        ).fetchall()
        conditions = dict(
            con.execute(
                "SELECT DISTINCT condition_source_value, condition_concept_id FROM condition_occurrence"
            ).fetchall()
        )
        drug_concepts = con.execute(
            "SELECT DISTINCT drug_concept_id, drug_source_concept_id FROM drug_exposure"
        ).fetchall()
    assert glucose == [(3004501, 3004501)]
    assert conditions == {"44054006": 201826, "38341003": 0}
    assert drug_concepts == [(0, 1545958)]
    with result.unmapped_codes_report_path.open() as handle:
        unmapped = {(r["source_system"], r["source_code"]) for r in csv.DictReader(handle)}
    assert (ATC, "C10AA01") in unmapped and (SNOMED, "38341003") in unmapped
    assert (LOINC, "15074-8") not in unmapped


def test_athena_folder_without_concepts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"CONCEPT\.csv"):
        load_athena(tmp_path)
