"""SQLite plans the reads of several resources by id (an import batch's prefetch, ``Unit.load``,
the UPDATE that supersedes current versions) from the unique current-version index, with and
without statistics: with ``(res_type, current, last_updated)`` it walked every current resource
of the type instead (67 ms for 40 ids at 1M resources, migration 0011).

These are the statements the repository really sends, captured on their way to the driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from carnet.app import Services, build_services
from carnet.db.maintenance import analyze
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR


@pytest.fixture
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(make_settings(tmp_path / "data"))
    yield built
    built.close()


def _observation(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": 60 + i, "unit": "kg"},
    }


def _reads_by_ids(services: Services) -> list[tuple[str, Any]]:
    """Statements on fhir_resource with an ``res_id IN`` list, sent while reading and updating
    several Observations at once."""
    fhir = services.fhir
    ids = [
        fhir.create("Observation", _observation(i), ctx=AS_LOCAL_OPERATOR).stored.res_id
        for i in range(30)
    ]
    keys = [("Observation", res_id) for res_id in ids[:10]]
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if "fhir_resource" in statement and "res_id IN" in statement and not many:
            captured.append((statement, params))

    event.listen(services.engine, "before_cursor_execute", capture)
    try:
        with fhir.repo.unit(write=False) as unit:
            unit.prefetch_current(keys)
        with fhir.repo.unit(write=False) as unit:
            assert len(unit.load(keys)) == 10
        with fhir.repo.unit() as unit:
            for res_type, res_id in keys[:3]:
                previous = unit.current(res_type, res_id)
                body = {**_observation(99), "id": res_id}
                unit.write(res_type, res_id, body, method="PUT", previous=previous)
    finally:
        event.remove(services.engine, "before_cursor_execute", capture)
    return captured


def _plans(services: Services, statements: list[tuple[str, Any]]) -> list[str]:
    with services.engine.connect() as conn:
        return [
            " ".join(str(row[3]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", p))
            for sql, p in statements
        ]


@pytest.mark.parametrize("statistics", [False, True])
def test_reads_of_several_ids_use_the_current_version_index(
    sqlite_services: Services, statistics: bool
) -> None:
    if statistics:
        for i in range(200):  # enough current rows of the type for the statistics to matter
            sqlite_services.fhir.create("Observation", _observation(i), ctx=AS_LOCAL_OPERATOR)
        analyze(sqlite_services.engine)
    statements = _reads_by_ids(sqlite_services)
    kinds = {sql.split()[0] for sql, _ in statements}
    assert kinds == {"SELECT", "UPDATE"}, kinds  # prefetch, load, supersede: each was captured
    for plan in _plans(sqlite_services, statements):
        assert "uq_fhir_resource_current (res_type=? AND res_id=?)" in plan, plan
