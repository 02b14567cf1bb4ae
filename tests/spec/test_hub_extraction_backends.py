"""The extraction reads the store and writes its log alike on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from carnet.app import Services
from carnet.hub.omop.service import extract, projects_using
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.hub_store import PersonSpec, add_person, spec_for


def test_extraction_runs_and_logs_on_every_backend(services: Services, tmp_path: Path) -> None:
    pids = [
        add_person(services, PersonSpec(conditions=["44054006"], glucose=[("2022-01-01", 5.0)]), i)
        for i in range(2)
    ]
    result = extract(services, AS_LOCAL_OPERATOR, spec_for(tmp_path / "out"))
    assert result.row_counts["person"] == 2 and result.row_counts["measurement"] == 2
    assert [u["project_id"] for u in projects_using(services, pids[0])] == ["project-a"]
