"""Helpers for the research hub's tests: callers with hub roles, an application, and a small
OMOP-shaped DuckDB extract standing in for carnet/hub/omop's output."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import duckdb
from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.hub.omop.spec import ExtractionResult, ExtractionSpec, RiskReport
from carnet.hub.roles import OUTPUT_CHECKER, RESEARCHER, REVIEWER
from tests.support.auth import bearer


def person(subject: str) -> Principal:
    return Principal(Kind.PERSON, subject, patient_id=f"patient-of-{subject}")


RESEARCHER_A = person("researcher-a")
TEAMMATE = person("researcher-b")
OTHER_RESEARCHER = person("researcher-c")
REVIEWER_1 = person("reviewer-1")
CHECKER_1 = person("checker-1")
CHECKER_2 = person("checker-2")
STRANGER = person("stranger")


def grant_roles(services: Services) -> None:
    hub = services.hub
    assert hub is not None
    for who, role in (
        (RESEARCHER_A, RESEARCHER),
        (TEAMMATE, RESEARCHER),
        (OTHER_RESEARCHER, RESEARCHER),
        (REVIEWER_1, REVIEWER),
        (TEAMMATE, REVIEWER),  # a reviewer who is also in researcher-a's team
        (CHECKER_1, OUTPUT_CHECKER),
        (CHECKER_2, OUTPUT_CHECKER),
        (TEAMMATE, OUTPUT_CHECKER),
    ):
        hub.roles.grant(who.subject, role)


def as_(client: TestClient, services: Services, who: Principal) -> dict[str, str]:
    return bearer(services, who)


def application(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Diabète de type 2 et insuffisance rénale",
        "organisation": "Université de Bordeaux",
        "purpose": "Estimer l'incidence de l'insuffisance rénale chez les diabétiques.",
        "publicInterest": "Améliorer le dépistage en soins primaires.",
        "legalBasis": "RGPD art. 9(2)(j); EHDS art. 53(1)(e)",
        "team": [TEAMMATE.subject],
        "datasets": ["carnet-record"],
        "variables": {"person": ["year_of_birth", "gender_concept_id"], "condition_occurrence": []},
        "population": "Adultes avec un diagnostic de diabète de type 2",
        "periodStart": "2020-01-01",
        "periodEnd": "2025-12-31",
        "durationMonths": 24,
        "deidentification": "pseudonymised",
        "deidentificationReason": "Suivi longitudinal des mêmes personnes.",
        "kThreshold": 5,
        "disclosureProfile": "opensafely",
    }
    body.update(changes)
    return body


def write_extract(path: Path, counts: dict[tuple[str, int], int]) -> None:
    """A person table with ``counts[(sex, year_of_birth)]`` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a new extraction replaces the project's extract
    path.write_bytes(_extract_image(tuple(counts.items())))


@cache
def _extract_image(counts: tuple[tuple[tuple[str, int], int], ...]) -> bytes:
    """The bytes of an extract database, built once per process for each ``counts``: opening
    a new DuckDB file costs ~30 ms of CPU, copying a closed one almost nothing."""
    with TemporaryDirectory() as scratch:
        path = Path(scratch) / "extract.duckdb"
        conn = duckdb.connect(str(path))
        conn.execute(
            "CREATE TABLE person"
            " (person_id BIGINT, gender_source_value VARCHAR, year_of_birth INTEGER)"
        )
        # one INSERT per (sex, year) from range(): executemany runs one statement a row
        first_id = 0
        for (sex, year), n in counts:
            conn.execute(
                "INSERT INTO person SELECT ? + range, ?, ? FROM range(?)",
                [first_id, sex, year, n],
            )
            first_id += n
        conn.close()  # checkpointed: the file alone holds the database
        return path.read_bytes()


EXTRACT_COUNTS = {("F", 1950): 7, ("M", 1950): 12, ("F", 1960): 23, ("M", 1960): 8}


def fake_extractor(spec: ExtractionSpec) -> ExtractionResult:
    """Stands in for carnet.hub.omop.service.extract: writes a tiny extract where the spec says."""
    path = spec.output_dir / "extract.duckdb"
    write_extract(path, EXTRACT_COUNTS)
    report = RiskReport(
        quasi_identifiers=spec.quasi_identifiers,
        records=50,
        classes=4,
        k_anonymity=7,
        l_diversity=1,
        prosecutor_risk=1 / 7,
        marketer_risk=4 / 50,
        records_below_k=0,
        k_threshold=spec.k_threshold,
        suppressed_records=0,
        generalisation=(),
        release_blocked=False,
    )
    return ExtractionResult(
        extract_path=path,
        row_counts={"person": 50},
        unmapped_codes_report_path=spec.output_dir / "unmapped.csv",
        risk_report=report,
        output_hash="0" * 64,
        vocabulary_version="none",
        excluded_opted_out=0,
    )


def operator_ctx() -> RequestContext:
    return RequestContext.local_operator(actor="hub-test", purpose="research")
