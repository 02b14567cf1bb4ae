"""A scan, the queue and a confirmed closing give the same answers on SQLite and PostgreSQL
(the event-id window of the audit log, the queue's tables, the outbox)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.caller import RequestContext
from carnet.record.models import record_notification
from carnet.record.notifications import ALERT_ABNORMAL_ACCESS
from carnet.watch.wiring import build
from tests.support.watch_world import build_watch_world

CLI = RequestContext.local_operator(actor="operator:cli", source="cli", purpose="security")


@pytest.mark.both_backends
def test_a_scan_finds_the_relative_and_a_confirmation_tells_them_on_every_backend(
    services: Services,
) -> None:
    world = build_watch_world(services)
    watch = build(
        services.settings, services.engine, services.fhir, services.audit, services.crypto.blind
    )
    report = watch.scan(CLI)
    assert (report.unexplained, report.new_alerts) == (2, 1)
    (alert,) = watch.alerts(CLI)
    assert (alert["actor"], alert["patients"], alert["reasons"][0]) == (
        world.pro,
        [world.relative],
        "family",
    )
    watch.close(CLI, alert["id"], "confirmed")
    n = record_notification.c
    with services.engine.connect() as conn:
        told = conn.execute(select(n.patient_id).where(n.kind == ALERT_ABNORMAL_ACCESS)).all()
    assert [r.patient_id for r in told] == [world.relative]
