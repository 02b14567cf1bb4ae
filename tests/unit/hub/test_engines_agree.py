"""One pipeline, two engines: DuckDB and Spark (local mode) write extracts with the same hash,
on a real store through ``extract`` and on small random stores (Hypothesis) through the staging
step and the engines themselves. The worker's Spark session (the ``spark`` fixture), which the hub's
engine takes over."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carnet.app import Services
from carnet.crypto.pseudonyms import ProjectPseudonyms
from carnet.hub.omop.canonical import extract_hash
from carnet.hub.omop.cdm import TABLES
from carnet.hub.omop.engines import (
    DuckdbEngine,
    SparkEngine,
    release_sql,
    spark_session,
    write_suppressed,
)
from carnet.hub.omop.service import extract
from carnet.hub.omop.spec import OMOP_TABLES
from carnet.hub.omop.staging import Stager
from carnet.hub.omop.vocabulary import Vocabulary
from carnet.identity.engines import SparkEngine as IdentitySpark
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.hub_store import PersonSpec, add_person, create, open_hub_services, spec_for
from tests.support.migrated_store import SqliteTemplate

pytestmark = pytest.mark.slow  # reason: starts a Spark session (about 10 s) and runs it


@pytest.fixture(scope="module", autouse=True)
def hub_spark(spark: IdentitySpark) -> None:
    spark_session()  # on the worker's Spark context; each extract then opens a session of its own


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Services]:
    built = open_hub_services(tmp_path_factory.mktemp("engines") / "data", migrated_sqlite)
    for i in range(5):
        pid = add_person(
            built,
            PersonSpec(
                gender="male" if i % 2 else "female",
                birth="1971-02-03",
                conditions=["44054006", "38341003"][: 1 + i % 2],
                glucose=[("2022-05-01T23:30:00-04:00", 5.123456789), ("2022-05-02", 7)],
            ),
            i,
        )
        create(
            built,
            "MedicationRequest",
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": f"Patient/{pid}"},
                "authoredOn": "2022-05-01T10:00:00+02:00",
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]
                },
                "dispenseRequest": {"quantity": {"value": 90.5}, "numberOfRepeatsAllowed": 3},
            },
        )
    yield built
    built.close()


def test_duckdb_and_spark_extracts_of_a_store_have_the_same_hash(
    services: Services, tmp_path: Path
) -> None:
    hashes = {}
    for engine in ("duckdb", "spark"):
        spec = spec_for(tmp_path / engine, engine=engine, dates="shift")
        result = extract(services, AS_LOCAL_OPERATOR, spec)
        assert not result.risk_report.release_blocked
        hashes[engine] = (result.output_hash, dict(result.row_counts))
    assert hashes["duckdb"] == hashes["spark"]
    assert hashes["duckdb"][1]["measurement"] == 10 and hashes["duckdb"][1]["drug_exposure"] == 5


@dataclass(frozen=True)
class Fake:
    res_type: str
    res_id: str
    patient_id: str | None
    body: dict[str, Any] | None


DAY = st.dates(date(1990, 1, 1), date(2024, 12, 31))
MOMENT = st.builds(
    lambda d, minutes, zone: f"{d.isoformat()}T{minutes // 60:02d}:{minutes % 60:02d}:00{zone}",
    DAY,
    st.integers(0, 1439),
    st.sampled_from(["Z", "+01:00", "-05:30", "+14:00"]),
)
WHEN = st.one_of(DAY.map(date.isoformat), MOMENT)
VALUE = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
CODE = st.sampled_from(["E11", "I10", "J45.9", "15074-8", "8480-6", "C10AA01"])
STATUS = st.sampled_from(["final", "final", "cancelled", "entered-in-error"])


@st.composite
def random_store(draw: st.DrawFn) -> list[Fake]:
    resources: list[Fake] = []
    for p in range(draw(st.integers(1, 6))):
        pid = f"p{p}"
        resources.append(
            Fake(
                "Patient",
                pid,
                pid,
                {
                    "gender": draw(st.sampled_from(["male", "female", "other", "unknown"])),
                    "birthDate": draw(DAY).isoformat(),
                    **({"deceasedDateTime": draw(MOMENT)} if draw(st.booleans()) else {}),
                },
            )
        )
        for n in range(draw(st.integers(0, 5))):
            kind = draw(
                st.sampled_from(["Observation", "Condition", "MedicationRequest", "Encounter"])
            )
            rid = f"{kind}-{p}-{n}"
            if kind == "Observation":
                body = {
                    "status": draw(STATUS),
                    "code": {"coding": [{"system": "http://loinc.org", "code": draw(CODE)}]},
                    "effectiveDateTime": draw(WHEN),
                    "valueQuantity": {"value": draw(VALUE), "code": "mg/dL"},
                }
            elif kind == "Condition":
                body = {
                    "code": {"coding": [{"code": draw(CODE)}]},
                    "onsetDateTime": draw(WHEN),
                    "encounter": {"reference": f"Encounter/Encounter-{p}-0"},
                }
            elif kind == "MedicationRequest":
                body = {
                    "status": draw(st.sampled_from(["active", "cancelled"])),
                    "medicationCodeableConcept": {"coding": [{"code": draw(CODE)}]},
                    "authoredOn": draw(WHEN),
                }
            else:
                start = draw(DAY)
                body = {
                    "status": "finished",
                    "class": {"code": draw(st.sampled_from(["AMB", "IMP"]))},
                    "period": {
                        "start": start.isoformat(),
                        "end": (start + timedelta(days=draw(st.integers(0, 9)))).isoformat(),
                    },
                }
            resources.append(Fake(kind, rid, pid, body))
    return draw(st.permutations(resources))


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(resources=random_store(), dates=st.sampled_from(["shift", "year", "month", "exact"]))
def test_engines_agree_on_random_stores(tmp_path: Path, resources: list[Fake], dates: Any) -> None:
    run = tmp_path / f"run-{abs(hash((tuple(r.res_id for r in resources), dates)))}"
    stager = Stager(
        ProjectPseudonyms("random", 1, b"\x07" * 32), Vocabulary(), dates, lambda _: set()
    )
    stager.add(resources)
    staged = stager.finish(run / "staged")
    # the tables a random store fills (procedures and observations are covered by the store test)
    filled = OMOP_TABLES - {"procedure_occurrence", "observation"}
    columns = {t: TABLES[t].column_names for t in sorted(filled)}
    releases = {
        t: release_sql(t, cols, generalised=dates == "shift") for t, cols in columns.items()
    }
    inputs = {t: staged.files[t] for t in columns}
    inputs["suppressed"] = write_suppressed(staged.folder, ())
    from_duckdb = DuckdbEngine().write(inputs, releases, run / "duckdb" / "x")
    from_spark = SparkEngine().write(inputs, releases, run / "spark" / "x")
    assert extract_hash(from_duckdb, columns) == extract_hash(from_spark, columns)
