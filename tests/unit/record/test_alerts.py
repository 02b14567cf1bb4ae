"""Alerts the patient chooses, queued in the notification outbox: a professional's first access
(once), a new document by someone else, and emergency access always (EHDS art. 9), even with no
alert chosen; a sweep run twice sends nothing twice; another's choices are not reachable."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.policy.control_events import ControlError
from carnet.record import notifications as templates
from carnet.record.alerts import AlertService
from carnet.record.models import record_notification
from tests.unit.record.controls_setup import Record, document, small_record


def _alerts(services: Services) -> AlertService:
    return AlertService(services.engine, services.audit, services.controls)


def _queued(services: Services, patient: str) -> list[str]:
    n = record_notification.c
    with services.engine.connect() as conn:
        return list(
            conn.execute(
                select(n.kind)
                .where(n.patient_id == patient, n.kind.like("alert-%"))
                .order_by(n.created_at)
            ).scalars()
        )


@pytest.fixture
def record(services: Services) -> Record:
    return small_record(services)


def test_emergency_access_is_always_notified_even_without_alerts_chosen(
    services: Services, record: Record
) -> None:
    alerts = _alerts(services)
    assert alerts.choice(record.as_patient, None).first_access is False
    services.emergency.break_glass(record.as_er, record.patient, "unconscious")
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_er)
    alerts.sweep()
    assert _queued(services, record.patient) == [templates.ALERT_EMERGENCY]


def test_first_access_alert_once_per_professional_and_new_document_when_chosen(
    services: Services, record: Record
) -> None:
    alerts = _alerts(services)
    alerts.choose(record.as_patient, None, first_access=True, new_document=True)
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)
    services.fhir.create("DocumentReference", document(record.patient), ctx=record.as_gp)
    assert alerts.sweep() == 2
    assert _queued(services, record.patient) == [
        templates.ALERT_FIRST_ACCESS,
        templates.ALERT_NEW_DOCUMENT,
    ]
    assert alerts.sweep() == 0  # nothing twice
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)
    assert alerts.sweep() == 0  # not a first access any more


def test_no_alert_for_what_was_not_chosen_nor_for_the_persons_own_steps(
    services: Services, record: Record
) -> None:
    alerts = _alerts(services)
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_patient)
    alerts.sweep()
    assert _queued(services, record.patient) == []
    # chosen later: the professional already seen gives no "first access"
    alerts.choose(record.as_patient, None, first_access=True, new_document=False)
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)
    alerts.sweep()
    assert _queued(services, record.patient) == []


def test_another_persons_alerts_answer_as_missing(services: Services, record: Record) -> None:
    alerts = _alerts(services)
    with pytest.raises(ControlError) as refused:
        alerts.choose(record.as_other, record.patient, first_access=False, new_document=False)
    assert refused.value.status == 404
    with pytest.raises(ControlError):
        alerts.choice(record.as_other, record.patient)


def _sweep_at(start: threading.Barrier, alerts: AlertService) -> None:
    start.wait()
    alerts.sweep()


@pytest.mark.both_backends
def test_two_concurrent_sweeps_queue_each_alert_once(services: Services, record: Record) -> None:
    """Two sweeps (two threads, or two server workers) that read the same position both find
    the same events: only the one that moves the position forward queues their alerts."""
    first, second = _alerts(services), _alerts(services)
    first.sweep()  # the position exists: the sweeps race on moving it, not on creating it
    for _ in range(6):
        services.emergency.break_glass(record.as_er, record.patient, "unconscious")
        services.audit.checkpoint()
        start = threading.Barrier(2)
        threads = [threading.Thread(target=_sweep_at, args=(start, a)) for a in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert _queued(services, record.patient) == [templates.ALERT_EMERGENCY] * 6


@pytest.mark.both_backends
def test_two_sweeps_racing_to_create_the_position_queue_each_alert_once(
    services: Services, record: Record
) -> None:
    services.emergency.break_glass(record.as_er, record.patient, "unconscious")
    services.audit.checkpoint()
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=_sweep_at, args=(start, _alerts(services))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _queued(services, record.patient) == [templates.ALERT_EMERGENCY]
