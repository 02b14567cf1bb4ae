"""Who goes into an extract and under which id: opt-outs honoured at extraction time, per-project
pseudonyms (unrelated across projects, new after a re-key), the map kept in the record store, the
permit's tables and columns only, dates shifted per person, reads audited as the extraction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import orjson
import pytest
from sqlalchemy import select

from carnet.db.instants import utc_now
from carnet.fhir.errors import FhirError
from carnet.hub.omop.models import hub_extraction_person
from carnet.hub.omop.optout import research_opted_out
from carnet.hub.omop.service import (
    ExtractionError,
    extract,
    extraction_context,
    projects_using,
    rekey,
)
from carnet.hub.omop.spec import ExtractionResult
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.hub_setup import PeopleStore as Store
from tests.support.hub_setup import opted_out_of_research, people_store
from tests.support.hub_store import PersonSpec, spec_for
from tests.support.migrated_store import SqliteTemplate


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Store]:
    people = [
        PersonSpec(
            birth=f"19{60 + i}-06-15",
            glucose=[("2022-03-01T08:00:00Z", 5.0 + i), ("2022-03-21T08:00:00Z", 6.0)],
        )
        for i in range(4)
    ]
    with people_store(tmp_path_factory.mktemp("pseudonyms"), migrated_sqlite, people) as made:
        yield made


def _run(store: Store, name: str, **changes: object) -> ExtractionResult:
    return extract(store.services, AS_LOCAL_OPERATOR, spec_for(store.root / name, **changes))


def _person_ids(result: ExtractionResult) -> set[int]:
    with duckdb.connect(str(result.extract_path), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT person_id FROM person").fetchall()}


def _pseudonym_map(store: Store) -> dict[tuple[str, str], int]:
    p = hub_extraction_person.c
    with store.services.engine.connect() as conn:
        rows = conn.execute(select(p.extraction_id, p.patient_id, p.person_id)).all()
    return {(r.extraction_id, r.patient_id): r.person_id for r in rows}


def test_same_person_has_unrelated_ids_in_two_projects(store: Store) -> None:
    first = _run(store, "a1", project_id="project-a")
    second = _run(store, "b1", project_id="project-b")
    ids_a, ids_b = _person_ids(first), _person_ids(second)
    assert len(ids_a) == len(ids_b) == 4
    assert not ids_a & ids_b
    again = _run(store, "a2", project_id="project-a")
    assert _person_ids(again) == ids_a  # stable within a project until it is re-keyed


def test_rekey_gives_every_person_a_new_id_in_that_project_only(store: Store) -> None:
    before_a = _person_ids(_run(store, "ra1", project_id="project-r"))
    before_b = _person_ids(_run(store, "rb1", project_id="project-s"))
    assert rekey(store.services, "project-r") == 2
    after_a = _person_ids(_run(store, "ra2", project_id="project-r"))
    assert not before_a & after_a
    assert _person_ids(_run(store, "rb2", project_id="project-s")) == before_b


def test_pseudonym_map_stays_in_the_record_store_never_in_the_extract(store: Store) -> None:
    result = _run(store, "map", project_id="project-map")
    ids = _person_ids(result)
    mapped = {
        pid for (_, patient), pid in _pseudonym_map(store).items() if patient in store.patients
    }
    assert ids <= mapped
    folder = result.extract_path.parent
    for path in folder.iterdir():  # the extract and every report beside it
        data = path.read_bytes()
        assert not any(patient.encode() in data for patient in store.patients), path.name


def test_opted_out_patient_is_excluded_from_every_later_extract(store: Store) -> None:
    opted = store.patients[3]
    before = _run(store, "o1", project_id="project-o")
    assert before.excluded_opted_out == 0
    assert [p["project_id"] for p in projects_using(store.services, opted)].count("project-o") == 1
    with opted_out_of_research(store, 3):
        after = _run(store, "o2", project_id="project-o")
        assert after.excluded_opted_out == 1
        assert len(_person_ids(after)) == 3
        assert after.risk_report.records == 3
        extraction_ids = {e for (e, patient) in _pseudonym_map(store) if patient == opted}
        uses = projects_using(store.services, opted)
        # the earlier extract did include them, and still says so; the new one does not
        assert [u["project_id"] for u in uses].count("project-o") == 1
        assert len(extraction_ids) == len(uses)


def test_projects_using_names_only_projects_and_permits(store: Store) -> None:
    _run(store, "u1", project_id="project-u", permit_id="permit-u")
    uses = projects_using(store.services, store.patients[0])
    assert {"project_id": "project-u", "permit_id": "permit-u"}.items() <= uses[-1].items()
    assert set(uses[-1]) == {"project_id", "permit_id", "extracted_at"}


def test_only_the_permitted_tables_and_columns_leave(store: Store) -> None:
    result = _run(
        store,
        "narrow",
        tables=frozenset({"person", "measurement"}),
        columns={"measurement": frozenset({"measurement_date", "value_as_number"})},
    )
    with duckdb.connect(str(result.extract_path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        columns = [d[0] for d in con.execute("SELECT * FROM measurement").description]
    assert tables == {"person", "measurement"}
    assert columns == ["measurement_id", "measurement_date", "value_as_number"]
    assert set(result.row_counts) == {"person", "measurement"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tables": frozenset({"person", "note"})}, "unknown OMOP tables"),
        ({"columns": {"person": frozenset({"family_name"})}}, "no columns"),
        (
            {"columns": {"death": frozenset({"death_date"})}, "tables": frozenset({"person"})},
            "not extracted",
        ),
        ({"k_threshold": 0}, "k_threshold"),
        ({"quasi_identifiers": ("postal_code",)}, "unknown quasi-identifiers"),
        ({"project_id": "../escape"}, "project_id"),
    ],
)
def test_a_bad_spec_is_refused_and_writes_nothing(
    store: Store, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    before = len(_pseudonym_map(store))
    with pytest.raises(ExtractionError, match=message):
        extract(store.services, AS_LOCAL_OPERATOR, spec_for(tmp_path / "out", **changes))
    assert not (tmp_path / "out").exists()
    assert len(_pseudonym_map(store)) == before


def _glucose_dates(result: ExtractionResult) -> dict[int, list[date]]:
    with duckdb.connect(str(result.extract_path), read_only=True) as con:
        rows = con.execute(
            "SELECT person_id, measurement_date FROM measurement ORDER BY person_id, measurement_date"
        ).fetchall()
    found: dict[int, list[date]] = {}
    for person_id, day in rows:
        found.setdefault(person_id, []).append(day)
    return found


def test_shifted_dates_move_per_person_and_keep_intervals(store: Store) -> None:
    shifted = _glucose_dates(_run(store, "shift", project_id="project-d", dates="shift"))
    offsets = set()
    for days in shifted.values():
        assert (days[1] - days[0]).days == 20  # the interval within a person is kept
        offsets.add((days[0] - date(2022, 3, 1)).days)
    assert 0 not in offsets
    assert len(offsets) > 1  # each person has their own shift


def test_dates_generalised_to_the_year_keep_no_day_or_time(store: Store) -> None:
    result = _run(store, "year", project_id="project-y", dates="year")
    assert {d for days in _glucose_dates(result).values() for d in days} == {date(2022, 1, 1)}
    with duckdb.connect(str(result.extract_path), read_only=True) as con:
        born = con.execute(
            "SELECT DISTINCT month_of_birth, day_of_birth, birth_datetime FROM person"
        ).fetchall()
        moments = con.execute("SELECT DISTINCT measurement_datetime FROM measurement").fetchall()
    assert born == [(None, None, None)]
    assert moments == [(None,)]


def test_extraction_reads_are_audited_as_the_extraction_of_the_permit(store: Store) -> None:
    _run(store, "audited", project_id="project-audit", permit_id="permit-audit-7")
    store.services.audit.flush()
    page = store.services.audit.patient_history(
        store.patients[1], AS_LOCAL_OPERATOR, count=50, offset=0
    )
    actors = [orjson.loads(e.body).get("actor") for e in page.events]
    assert "hub-extraction:permit-audit-7" in actors


def test_the_extraction_caller_reads_and_cannot_write(store: Store) -> None:
    """The system caller an extraction runs as has read scopes only: a write is refused."""
    caller = extraction_context(AS_LOCAL_OPERATOR, "permit-w")
    with pytest.raises(FhirError) as refused:
        store.services.fhir.create(
            "Observation",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{store.patients[0]}"},
            },
            ctx=caller,
        )
    assert refused.value.status == 403
    assert caller.actor == "hub-extraction:permit-w" and caller.purpose == "research"


def test_opt_out_is_read_from_its_history_as_it_stood_at_the_extraction_instant(
    store: Store,
) -> None:
    before_any = utc_now()
    with opted_out_of_research(store, 2) as patient:
        while_out = utc_now()
    # and back in
    assert research_opted_out(store.services, [patient], before_any) == set()
    assert research_opted_out(store.services, [patient], while_out) == {patient}
    assert research_opted_out(store.services, store.patients, utc_now()) == set()
    back_in = _run(store, "back-in", project_id="project-back-in")
    assert back_in.excluded_opted_out == 0  # opted back in before this extraction
    assert len(_person_ids(back_in)) == 4
