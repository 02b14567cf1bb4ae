"""The audit spool (SQLite): a read's events wait there, durable, while a writer holds the lock,
and are drained into the log exactly once, whatever crash comes in between.

The crash is a real SIGKILL of a real process, forked from the session's pre-imported parent
(the ``forks`` fixture, tests/support/forkserver.py) on a copy of the session's migrated store:
the interpreter's start-up and the migrations were most of its cost, and neither is under test."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
from sqlalchemy import select

from carnet.app import Services, build_services
from carnet.audit.events import Actor, Touched, build_event
from carnet.audit.models import audit_event, audit_event_patient
from carnet.audit.spool import AuditSpool
from carnet.audit.verify import verify
from carnet.settings import Settings
from tests.support.forkserver import ForkServer
from tests.support.migrated_store import SqliteTemplate

# Builds the services, creates a patient, then reads it three times while another connection
# holds the write lock: the reads' events can only go to the spool. Prints their patient and
# waits to be killed.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from carnet.app import build_services
    from carnet.caller import RequestContext
    from carnet.db.engine import writing
    from carnet.settings import Settings

    services = build_services(Settings.from_env({}, data_dir=sys.argv[1]))
    ctx = RequestContext.local_operator()
    pid = services.fhir.create("Patient", {"resourceType": "Patient"}, ctx=ctx).stored.res_id
    with writing(services.engine):
        for _ in range(3):
            services.fhir.read("Patient", pid, ctx=ctx)
        print(pid, services.audit.spool.count(), flush=True)
        time.sleep(120)
    """
)


def _settings(data_dir: Path) -> Settings:
    return Settings.from_env({}, data_dir=str(data_dir))


def _event_ids(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        return list(conn.execute(select(audit_event.c.event_id)).scalars())


def _reads_of(services: Services, patient_id: str) -> int:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(audit_event.c.body)
            .join(audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq)
            .where(audit_event_patient.c.patient_id == patient_id)
        ).scalars()
        return sum(orjson.loads(body)["action"] == "read" for body in rows)


def _first_line(path: Path, alive: Callable[[], bool]) -> str:
    """The first line the child prints, once printed; "" if it ended first (or after 120 s)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if "\n" in text:
            return text.split("\n", 1)[0]
        if not alive():
            return ""
        time.sleep(0.01)
    return ""


def test_spooled_read_events_survive_a_crash_before_drain(
    tmp_path: Path, forks: ForkServer, migrated_sqlite: SqliteTemplate
) -> None:
    data_dir = tmp_path / "data"
    migrated_sqlite.copy_into(data_dir)
    script, out = tmp_path / "child.py", tmp_path / "child.out"
    script.write_text(_CHILD)
    child = forks.start(
        str(script), [str(data_dir)], env=dict(os.environ), cwd=tmp_path, stdout=out
    )
    try:
        line = _first_line(out, lambda: child.poll() is None).split()
    finally:
        assert child.kill() == -signal.SIGKILL  # no close, no flush, no drain
    assert len(line) == 2, "the child did not get to its reads"
    patient_id, spooled = line[0], int(line[1])
    assert spooled == 3
    services = build_services(_settings(data_dir))
    try:
        assert services.audit.spool is not None and services.audit.spool.count() == 3
        assert _reads_of(services, patient_id) == 0
        report = verify(services.audit)  # drains first
        assert report.ok, report.problem
        assert services.audit.spool.count() == 0
        assert _reads_of(services, patient_id) == 3
    finally:
        services.close()
    again = build_services(_settings(data_dir))
    try:
        again.audit.flush()
        assert _reads_of(again, patient_id) == 3  # drained once, not again
        assert verify(again.audit).ok
    finally:
        again.close()


def test_drain_is_idempotent_when_interrupted(sqlite_services: Services) -> None:
    """A drain that committed to the log but crashed before deleting from the spool leaves the
    spool as it was: the next drain adds nothing twice, and still drains what is new."""
    audit = sqlite_services.audit
    spool = audit.spool
    assert spool is not None
    who = Actor(actor="dr-1", source="127.0.0.1", purpose="care")
    events = [
        build_event(who, "read", "Patient", 200, [Touched("Patient", f"p{i}", 1, f"p{i}")])
        for i in range(5)
    ]
    spool.add(events)
    assert audit.drain() == 5
    spool.add(events)  # the interrupted drain: every row still in the spool
    late = build_event(who, "search", "Observation", 200, [])
    spool.add([late])
    assert audit.drain() == 1  # only the new one
    assert spool.count() == 0
    counts = Counter(_event_ids(sqlite_services))
    assert all(counts[e.event_id] == 1 for e in [*events, late])
    cp = audit.checkpoint()
    assert cp is not None and cp.size == len(counts)
    assert verify(audit).ok


def test_the_spool_is_a_private_file_beside_the_database(sqlite_services: Services) -> None:
    spool = sqlite_services.audit.spool
    assert isinstance(spool, AuditSpool)
    assert spool.path.parent == sqlite_services.settings.data_dir
    assert spool.count() == 0
    assert spool.path.stat().st_mode & 0o777 == 0o600
