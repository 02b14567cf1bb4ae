"""The Alembic migration and the table definitions (models.py) must describe the same schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from carnet.db.schema import metadata
from tests.support.postgres import ThrowawayPostgres

EXPECTED_TABLES = {
    "audit_event",
    "audit_event_patient",
    "audit_node",
    "audit_checkpoint",
    "audit_sequencer",
    "data_key",
    "fhir_resource",
    "idx_string",
    "idx_token",
    "idx_reference",
    "idx_date",
    "idx_quantity",
    "idx_number",
    "idx_uri",
    "bulk_job",  # bulk $export/$import job state (carnet/fhir/operations/models.py)
    "import_progress",
    "code_text",  # texts of codes for token :text search (carnet/fhir/models.py)
    "search_snapshot",  # stable paging of multi-page searches
    "search_snapshot_binding",  # who, which type and query may read each snapshot
    # the master patient index (carnet/identity/models.py)
    "identity",
    "identity_block",
    "vigilance_item",
    "quarantine",
    "identity_merge",
    "identity_model_params",
    "identity_register",  # the reference register (INSi stand-in)
    # authentication and the policy decision point (carnet/authn/models.py, carnet/policy/models.py)
    "access_account",
    "access_session",
    "access_login_attempt",
    "access_client",
    "access_auth_code",
    "access_refresh_token",
    "access_grant",
    "access_revoked_token",
    "access_rule",
    "access_care",
    "access_block",
    "access_visibility",
    "access_preference",
    "access_break_glass",
    "access_alert",
    "access_author",  # who wrote an item (migration 0013)
    # the personal space (carnet/record/models.py)
    "record_space",
    "record_representative",
    "record_notification",
    # research extraction (migration 0019): pseudonym keys, extraction log and pseudonym map
    "project_key",
    "hub_extraction",
    "hub_extraction_person",
    # the research hub's permits, releases and roles (carnet/hub/models.py, migration 0020)
    "hub_role",
    "hub_permit",
    "hub_permit_extract",
    "hub_release",
    "hub_release_review",
    "record_activation",  # 0016: one-time codes sent through the outbox
    # the patient's alerts and the research opt-out's history (migration 0018)
    "record_alert_choice",
    "record_alert_seen",
    "record_alert_cursor",
    "access_research_optout",
    # abnormal-access detection (carnet/watch/models.py, migration 0022)
    "watch_alert",
    "watch_flag",
    "watch_officer",
    "key_rotation",  # 0021: wrapping-key rotations and pseudonym re-keyings
}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    else:
        pg: ThrowawayPostgres = request.getfixturevalue("postgres")
        url = pg.create_database(f"migr_{uuid.uuid4().hex[:12]}")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _snapshot(engine: Engine) -> dict[str, Any]:
    insp = inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            sorted(
                (i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(table)
            ),
        )
        for table in sorted(insp.get_table_names())
    }


def test_metadata_knows_every_table() -> None:
    assert set(metadata.tables) == EXPECTED_TABLES


def test_migration_matches_models(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    assert set(inspect(fresh_engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
    assert _diff(fresh_engine) == []


def test_upgrade_twice_is_a_no_op(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    before = _snapshot(fresh_engine)
    with fresh_engine.connect() as conn:
        head = MigrationContext.configure(conn).get_current_heads()
    upgrade(fresh_engine)
    assert _snapshot(fresh_engine) == before
    with fresh_engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == head
    assert len(head) == 1
    assert _diff(fresh_engine) == []


def test_empty_database_differs_from_models(fresh_engine: Engine) -> None:
    """Control: the comparison does see differences when the schema is missing."""
    diff = _diff(fresh_engine)
    added = {d[1].name for d in diff if d[0] == "add_table"}
    assert added == EXPECTED_TABLES
