"""Record-level rows stay inside the project: only its team reads its extract, only while the
permit is active, only with one SELECT that reaches nothing but the extract, within limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.db.instants import utc_now
from carnet.hub.errors import HubError
from carnet.hub.permits import PermitService
from carnet.hub.workspace import open_extract, run_query
from tests.support.auth import bearer
from tests.support.hub import (
    CHECKER_1,
    OTHER_RESEARCHER,
    RESEARCHER_A,
    REVIEWER_1,
    STRANGER,
    TEAMMATE,
    write_extract,
)
from tests.support.hub_setup import extracted_permit

COUNT = {"sql": "SELECT count(*) FROM person"}


def test_no_one_outside_the_project_reads_its_rows(client: TestClient, services: Services) -> None:
    permit_id = extracted_permit(client, services)
    url = f"/hub/permits/{permit_id}/query"
    assert client.post(url, json=COUNT, headers=bearer(services, TEAMMATE)).status_code == 200
    # another project's researcher, a non-member and a checker may not even see the permit: its
    # missing page; a reviewer sees it but is not in the project: refused. No rows for any.
    for outsider, status in (
        (OTHER_RESEARCHER, 404),
        (STRANGER, 404),
        (CHECKER_1, 404),
        (REVIEWER_1, 403),
    ):
        answer = client.post(url, json=COUNT, headers=bearer(services, outsider))
        assert answer.status_code == status, outsider.subject
        assert "rows" not in answer.json()
    assert client.post(url, json=COUNT).status_code == 404  # the operator is not in the project
    anonymous = client.post(url, json=COUNT, headers={"Authorization": ""})
    assert anonymous.status_code == 401


def test_an_expired_or_revoked_permit_closes_the_workspace(
    client: TestClient, services: Services
) -> None:
    permit_id = extracted_permit(client, services)
    url = f"/hub/permits/{permit_id}/query"
    hub = services.hub
    assert hub is not None
    later = PermitService(
        services.engine, services.audit, hub.roles, now=lambda: utc_now() + timedelta(days=800)
    )
    assert later.expire_due() == 1
    answer = client.post(url, json=COUNT, headers=bearer(services, RESEARCHER_A))
    assert answer.status_code == 403
    assert "expired" in answer.text
    release = client.post(
        f"/hub/permits/{permit_id}/releases",
        json={"sql": "SELECT * FROM person", "rows": "gender_source_value"},
        headers=bearer(services, RESEARCHER_A),
    )
    assert release.status_code == 403


def test_a_revoked_permit_closes_the_workspace(client: TestClient, services: Services) -> None:
    permit_id = extracted_permit(client, services)
    revoked = client.post(
        f"/hub/permits/{permit_id}/steps/revoke", json={}, headers=bearer(services, REVIEWER_1)
    )
    assert revoked.json()["state"] == "revoked"
    answer = client.post(
        f"/hub/permits/{permit_id}/query", json=COUNT, headers=bearer(services, RESEARCHER_A)
    )
    assert answer.status_code == 403


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workspace") / "extract.duckdb"
    write_extract(path, {("F", 1950): 30, ("M", 1960): 30})
    return path


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM person",
        "CREATE TABLE copy AS SELECT * FROM person",
        "SELECT 1; SELECT 2",
        "COPY person TO 'out.csv'",
        "ATTACH 'other.duckdb'",
        "PRAGMA database_list",
        "not sql at all",
    ],
)
def test_only_one_select_is_accepted(extract: Path, sql: str) -> None:
    with pytest.raises(HubError) as refused:
        run_query(extract, sql)
    assert refused.value.status == 400


def test_a_select_reaches_no_file_but_the_extract(extract: Path) -> None:
    for sql in ("SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM 'other.parquet'"):
        with pytest.raises(HubError) as refused:
            run_query(extract, sql)
        assert refused.value.status == 400


def test_rows_and_time_are_limited(extract: Path) -> None:
    capped = run_query(extract, "SELECT * FROM person", max_rows=10)
    assert len(capped.rows) == 10
    assert capped.truncated
    with pytest.raises(HubError) as slow:
        run_query(extract, "SELECT count(*) FROM range(100000000000) AS a", seconds=0.2)
    assert slow.value.status == 408


def test_the_python_entry_point_opens_the_extract_read_only(extract: Path) -> None:
    conn = open_extract(extract)
    assert conn.sql("SELECT count(*) FROM person").fetchall() == [(60,)]
    with pytest.raises(duckdb.Error, match=r"read-only|Cannot execute"):
        conn.execute("DELETE FROM person")
    conn.close()
