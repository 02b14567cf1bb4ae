"""Tiny FHIR stores for the extraction tests: patients with a few coded events each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from carnet.app import Services, build_services
from carnet.hub.omop.spec import OMOP_TABLES, ExtractionSpec
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


@dataclass
class PersonSpec:
    gender: str = "female"
    birth: str = "1970-05-17"
    postal_code: str = "75012"
    conditions: list[str] = field(default_factory=list)
    glucose: list[tuple[str, float]] = field(default_factory=list)  # (dateTime, mmol/L)


def patient_body(person: PersonSpec, index: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:example:mrn", "value": f"MRN-SECRET-{index}"}],
        "name": [{"family": f"Nomdefamille{index}", "given": ["Prenom"]}],
        "gender": person.gender,
        "birthDate": person.birth,
        "address": [
            {"line": [f"{index} rue Secrete"], "city": "Paris", "postalCode": person.postal_code}
        ],
    }


def add_person(services: Services, person: PersonSpec, index: int) -> str:
    """Create the Patient and their events; returns the Patient id."""
    fhir = services.fhir
    pid = fhir.create("Patient", patient_body(person, index), ctx=AS_LOCAL_OPERATOR).stored.res_id
    subject = {"reference": f"Patient/{pid}"}
    for n, code in enumerate(person.conditions):
        fhir.create(
            "Condition",
            {
                "resourceType": "Condition",
                "identifier": [{"system": "urn:example:dossier", "value": f"COND-{index}-{n}"}],
                "subject": subject,
                "code": {
                    "coding": [{"system": SNOMED, "code": code, "display": "secret"}],
                    "text": "free text never leaves",
                },
                "onsetDateTime": "2021-03-04",
                "note": [{"text": "note about the patient"}],
            },
            ctx=AS_LOCAL_OPERATOR,
        )
    for when, value in person.glucose:
        fhir.create(
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "subject": subject,
                "category": [{"coding": [{"code": "laboratory"}]}],
                "code": {"coding": [{"system": LOINC, "code": "15074-8"}]},
                "effectiveDateTime": when,
                "valueQuantity": {
                    "value": value,
                    "unit": "mmol/L",
                    "system": "http://unitsofmeasure.org",
                    "code": "mmol/L",
                },
            },
            ctx=AS_LOCAL_OPERATOR,
        )
    return pid


def create(services: Services, res_type: str, body: dict[str, Any]) -> str:
    return services.fhir.create(res_type, body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def open_hub_services(data_dir: Path, template: SqliteTemplate) -> Services:
    """Services on a copy of the migrated SQLite store (one per test module)."""
    template.copy_into(data_dir)
    return build_services(make_settings(data_dir), migrate=False)


def spec_for(out: Path, **changes: Any) -> ExtractionSpec:
    """Every table, exact dates, k=1, DuckDB: a spec the tests narrow as they need."""
    base: dict[str, Any] = {
        "project_id": "project-a",
        "permit_id": "permit-a",
        "tables": OMOP_TABLES,
        "columns": {},
        "dates": "exact",
        "k_threshold": 1,
        "quasi_identifiers": (),
        "engine": "duckdb",
        "output_dir": out,
    }
    base.update(changes)
    return ExtractionSpec(**base)


def extract_values(path: Path) -> list[tuple[str, str, Any]]:
    """Every (table, column, value) of a DuckDB extract, for searches of what must not be there."""
    found: list[tuple[str, str, Any]] = []
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        for table in tables:
            result = con.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in result.description]
            for row in result.fetchall():
                found.extend((table, name, value) for name, value in zip(names, row, strict=True))
    return found
