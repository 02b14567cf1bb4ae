"""The project's workspace: read-only SQL over the project's DuckDB extract.

The extract is opened ``read_only`` with DuckDB's external access turned off and its configuration
locked, so a query can read the extract's tables and nothing else (no file, no other database, no
extension); only one SELECT statement is accepted, its time is bounded (the connection is
interrupted) and its rows are capped. These rows are record-level: they are answered only to the
project's team while its permit is active (WorkspaceService); anything leaving the project goes
through output control (releases.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.caller import RequestContext
from carnet.db.instants import utc_now
from carnet.hub.errors import HubError
from carnet.hub.extracts import PermitExtracts
from carnet.hub.permits import AUDIT_TYPE, PermitService

MAX_ROWS = 1000
MAX_SECONDS = 10.0
MAX_SQL_CHARS = 20_000


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool


def open_extract(path: Path) -> duckdb.DuckDBPyConnection:
    """The Python entry point inside the project: the extract, read-only, with no access to any
    other file. (``conn.sql(...)`` then gives DuckDB relations, ``.df()`` pandas frames.)"""
    return duckdb.connect(
        str(path),
        read_only=True,
        config={"enable_external_access": False, "lock_configuration": True},
    )


def single_select(sql: str) -> str:
    """``sql`` if it is exactly one SELECT statement; HubError(400) otherwise."""
    if not sql.strip() or len(sql) > MAX_SQL_CHARS:
        raise HubError(400, f"a query is one SELECT of at most {MAX_SQL_CHARS} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        raise HubError(400, "the query does not parse") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise HubError(400, "only one SELECT statement is accepted")
    return sql


@contextmanager
def bounded(conn: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[None]:
    """Interrupt whatever ``conn`` runs after ``seconds``: HubError(408). DuckDB errors become a
    HubError(400) naming the error's kind only (never a value of the extract)."""
    timer = threading.Timer(seconds, conn.interrupt)
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise HubError(408, f"the query ran past {seconds:g} s") from None
    except duckdb.Error as exc:
        raise HubError(400, f"the query failed: {type(exc).__name__}") from None
    finally:
        timer.cancel()


def run_query(
    path: Path, sql: str, *, max_rows: int = MAX_ROWS, seconds: float = MAX_SECONDS
) -> QueryResult:
    """Run one SELECT on the extract, read-only, within ``seconds`` and ``max_rows``."""
    single_select(sql)
    conn = open_extract(path)
    try:
        with bounded(conn, seconds):
            cursor = conn.execute(sql)
            columns = tuple(d[0] for d in cursor.description or ())
            rows = cursor.fetchmany(max_rows + 1)
    finally:
        conn.close()
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows)


class WorkspaceService:
    """Queries of a project's extract by its team, while the permit is active; audited."""

    def __init__(
        self,
        permits: PermitService,
        extracts: PermitExtracts,
        audit: AuditService,
        now: Callable[[], datetime] = utc_now,
        max_rows: int = MAX_ROWS,
        seconds: float = MAX_SECONDS,
    ) -> None:
        self.permits = permits
        self.extracts = extracts
        self.audit = audit
        self.now = now
        self.max_rows = max_rows
        self.seconds = seconds

    def extract_path(self, ctx: RequestContext, permit_id: str, action: str) -> Path:
        """The extract of an active permit for a member of its project (refusals audited)."""
        self.permits.active_for_member(ctx, permit_id, action)
        latest = self.extracts.latest_extract(permit_id)
        if latest is None:
            raise self.permits.refuse(ctx, action, permit_id, 409, "the project has no extract yet")
        return latest[0]

    def query(self, ctx: RequestContext, permit_id: str, sql: str) -> QueryResult:
        path = self.extract_path(ctx, permit_id, "workspace-query")
        result = run_query(path, sql, max_rows=self.max_rows, seconds=self.seconds)
        who = actor_of(replace(ctx, rule="hub workspace-query"))
        touched = [Touched(AUDIT_TYPE, permit_id, None, None)]
        self.audit.append([build_event(who, "workspace-query", AUDIT_TYPE, 200, touched)])
        return result
