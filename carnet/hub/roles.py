"""The hub's roles, held per account (or client) id: researcher, reviewer (the access committee)
and output checker. The operator grants them; a role never comes from a token's claims, so a
caller cannot give themselves one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select

from carnet.db.engine import writing
from carnet.db.instants import utc_now
from carnet.hub.models import hub_role

RESEARCHER = "researcher"
REVIEWER = "reviewer"
OUTPUT_CHECKER = "output_checker"
ROLES = (RESEARCHER, REVIEWER, OUTPUT_CHECKER)


class Roles:
    """Who holds which hub role."""

    def __init__(self, engine: Engine, now: Callable[[], datetime] = utc_now) -> None:
        self.engine = engine
        self.now = now

    def grant(self, subject: str, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown hub role {role!r}")
        with writing(self.engine) as conn:
            if not self.holds_in(conn, subject, role):
                conn.execute(
                    insert(hub_role).values(subject=subject, role=role, granted_at=self.now())
                )

    def revoke(self, subject: str, role: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(
                delete(hub_role).where(hub_role.c.subject == subject, hub_role.c.role == role)
            )

    def holds(self, subject: str, role: str) -> bool:
        with self.engine.connect() as conn:
            return self.holds_in(conn, subject, role)

    @staticmethod
    def holds_in(conn: Connection, subject: str, role: str) -> bool:
        row = conn.execute(
            select(hub_role.c.role).where(hub_role.c.subject == subject, hub_role.c.role == role)
        ).first()
        return row is not None
