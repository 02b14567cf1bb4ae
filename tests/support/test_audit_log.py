"""tests/support/audit_log.py: a test reading the audit log sees the events still spooled."""

from __future__ import annotations

from carnet.app import Services
from carnet.caller import RequestContext
from carnet.db.engine import writing
from tests.support.audit_log import logged_events


def test_a_test_reading_the_log_sees_the_reads_spooled_behind_a_writer(
    sqlite_services: Services,
) -> None:
    """A read made while a writer holds SQLite's lock spools its event (the bulk export's reads
    met the job's own writes this way, and a test reading only ``audit_event`` missed them)."""
    ctx = RequestContext.local_operator()
    fhir = sqlite_services.fhir
    patient = fhir.create("Patient", {"resourceType": "Patient"}, ctx=ctx).stored.res_id
    with writing(sqlite_services.engine):
        fhir.read("Patient", patient, ctx=ctx)
    spool = sqlite_services.audit.spool
    assert spool is not None and spool.count() == 1  # the case this helper exists for
    reads = [e for e in logged_events(sqlite_services) if e["action"] == "read"]
    assert len(reads) == 1
    assert spool.count() == 0
