"""Scheduled re-keying of per-project pseudonym keys (`carnet keys schedule`, `carnet keys rotate
--pseudonyms`): projects past their period get a new key, and extracts made afterwards give every
person an id unrelated to the earlier ones; projects not due keep theirs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import update

from carnet.crypto.models import project_key
from carnet.db.instants import utc_now
from carnet.hub.omop.service import extract
from carnet.hub.omop.spec import ExtractionResult
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.hub_store import PersonSpec, add_person, open_hub_services, spec_for
from tests.support.migrated_store import SqliteTemplate


def _person_ids(result: ExtractionResult) -> set[int]:
    with duckdb.connect(str(result.extract_path), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT person_id FROM person").fetchall()}


def test_projects_due_are_rekeyed_and_later_extracts_get_unrelated_ids(
    tmp_path: Path, migrated_sqlite: SqliteTemplate
) -> None:
    services = open_hub_services(tmp_path / "data", migrated_sqlite)
    try:
        for i in range(3):
            add_person(services, PersonSpec(birth=f"19{70 + i}-01-02", glucose=[]), i)

        def run(name: str, project: str) -> set[int]:
            spec = spec_for(tmp_path / name, project_id=project)
            return _person_ids(extract(services, AS_LOCAL_OPERATOR, spec))

        due_before = run("d1", "project-due")
        keys = services.crypto.project_keys
        with services.engine.begin() as conn:
            keys.schedule(conn, "project-due", 30)
            keys.schedule(conn, "project-kept", 30)
            # project-due's key was made 31 days ago: past its period; project-kept's is new.
            conn.execute(
                update(project_key)
                .where(project_key.c.project_id == "project-due")
                .values(created_at=utc_now() - timedelta(days=31))
            )
        assert services.crypto.rekey_due_pseudonyms(services.engine) == [("project-due", 2)]
        due_after = run("d2", "project-due")
        assert len(due_after) == len(due_before) == 3
        assert not due_after & due_before  # unrelated ids after the re-key
        with services.engine.connect() as conn:  # a project not due keeps its key
            assert keys.pseudonyms(conn, "project-kept").generation == 1
        assert services.crypto.rekey_due_pseudonyms(services.engine) == []  # new key: not due
        status = services.crypto.status(services.engine, services.settings)
        assert status.last_pseudonym_rekeying is not None and status.pseudonyms_due == ()
        with services.engine.begin() as conn, pytest.raises(ValueError, match="at least one day"):
            keys.schedule(conn, "project-due", 0)
    finally:
        services.close()
