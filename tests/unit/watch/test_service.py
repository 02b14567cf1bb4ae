"""The watch on a real store: a scan reads the professionals' accesses from the audit log,
explains what an encounter explains, queues what is odd with its reasons, and only a security
officer sees or closes the queue; a confirmed alert tells the patient who chose alerts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.audit.models import audit_event
from carnet.caller import Kind, Principal, RequestContext
from carnet.crypto.blind_index import normalise
from carnet.record.models import record_notification
from carnet.record.notifications import ALERT_ABNORMAL_ACCESS
from carnet.watch.service import WatchError, WatchService
from carnet.watch.wiring import build
from tests.support.module_services import module_services_fixture
from tests.support.watch_world import RPPS, SURNAME, build_watch_world

CLI = RequestContext.local_operator(actor="operator:cli", source="cli", purpose="security")
shared = module_services_fixture()


@dataclass
class World:
    services: Services
    watch: WatchService
    pro: str  # the professional's account
    explained: str  # a patient seen in an encounter naming the professional
    relative: str  # the professional's namesake at the same address, no encounter
    stranger: str  # a patient in care without any encounter: unexplained, nothing odd
    operator: str  # an operator account without the officer role


@pytest.fixture(scope="module")
def world(shared: Services) -> Iterator[World]:
    built = build_watch_world(shared)
    operator = shared.accounts.create_operator("ops.watch", "a long operator passphrase 42")
    watch = build(shared.settings, shared.engine, shared.fhir, shared.audit, shared.crypto.blind)
    yield World(shared, watch, built.pro, built.explained, built.relative, built.stranger, operator)


def _operator(account: str) -> RequestContext:
    return RequestContext(Principal(Kind.OPERATOR, account), account)


def test_a_scan_queues_the_relative_with_its_reason_and_not_the_explained_access(
    world: World,
) -> None:
    report = world.watch.scan(CLI)
    assert report.unexplained == 2  # the relative and the stranger; the encounter explains one
    alerts = world.watch.alerts(CLI)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["actor"] == world.pro
    assert alert["reasons"][0] == "family"
    assert alert["patients"] == [world.relative]
    assert world.explained not in alert["patients"]
    text = repr(alert).casefold()
    assert normalise(SURNAME) not in text and "lilas" not in text  # ids and words, never names


def test_a_second_scan_updates_the_alert_rather_than_adding_one(world: World) -> None:
    world.watch.scan(CLI)
    assert len(world.watch.alerts(CLI)) == 1


def test_the_queue_is_refused_to_anyone_but_a_security_officer_and_the_refusal_audited(
    world: World,
) -> None:
    person = RequestContext(Principal(Kind.PERSON, "acct-p", patient_id=world.relative), "acct-p")
    pro = RequestContext(Principal(Kind.PROFESSIONAL, world.pro, rpps=RPPS), world.pro)
    for caller in (person, pro, _operator(world.operator)):
        for attempt in (
            lambda c: world.watch.alerts(c),
            lambda c: world.watch.scan(c),
            lambda c: world.watch.close(c, "any", "confirmed"),
            lambda c: world.watch.flag(c, world.stranger, "vip"),
        ):
            with pytest.raises(WatchError) as refused:
                attempt(caller)
            assert refused.value.status == 403
    world.services.audit.flush()
    with world.services.engine.connect() as conn:
        bodies = [bytes(b) for b in conn.execute(select(audit_event.c.body)).scalars()]
    refusals = [b for b in bodies if b'"rule":"watch-officer-only"' in b]
    assert len(refusals) == 12


def test_an_operator_granted_the_role_sees_the_queue(world: World) -> None:
    officer = _operator(world.operator)
    with pytest.raises(WatchError):
        world.watch.grant(officer, world.operator)  # not from the operator's CLI
    world.watch.grant(CLI, world.operator)
    try:
        assert len(world.watch.alerts(officer)) == 1
    finally:
        world.watch.grant(CLI, world.operator, on=False)
    with pytest.raises(WatchError):
        world.watch.alerts(officer)


def test_a_flagged_vip_is_a_reason(world: World) -> None:
    world.watch.flag(CLI, world.stranger, "vip")
    try:
        world.watch.scan(CLI)
        alert = world.watch.alerts(CLI)[0]
        assert "vip" in alert["reasons"]
        assert world.stranger in alert["patients"]
    finally:
        world.watch.flag(CLI, world.stranger, "vip", on=False)


def test_a_bad_outcome_is_refused_and_changes_nothing(world: World) -> None:
    alert = world.watch.alerts(CLI)[0]
    with pytest.raises(WatchError) as refused:
        world.watch.close(CLI, alert["id"], "because I said so")
    assert refused.value.status == 400
    assert world.watch.alert(CLI, alert["id"])["status"] == "open"


def test_a_confirmed_alert_tells_the_patient_who_chose_alerts(world: World) -> None:
    alert = world.watch.alerts(CLI)[0]
    closed = world.watch.close(CLI, alert["id"], "confirmed")
    assert (closed["status"], closed["outcome"]) == ("closed", "confirmed")
    n = record_notification.c
    with world.services.engine.connect() as conn:
        told = (
            conn.execute(select(n.patient_id).where(n.kind == ALERT_ABNORMAL_ACCESS))
            .scalars()
            .all()
        )
    assert told == [world.relative]
    with pytest.raises(WatchError) as again:
        world.watch.close(CLI, alert["id"], "confirmed")
    assert again.value.status == 409
    assert world.watch.alerts(CLI) == []


def test_a_scan_of_too_many_days_is_refused_and_queues_nothing(world: World) -> None:
    before = world.watch.open_count()
    for days in (0, 32):
        with pytest.raises(WatchError) as refused:
            world.watch.scan(CLI, days=days)
        assert refused.value.status == 400
    assert world.watch.open_count() == before


def test_every_look_at_the_queue_is_an_audit_event_naming_the_alerts(world: World) -> None:
    listed = world.watch.alerts(CLI, open_only=False)
    world.services.audit.flush()
    e = audit_event.c
    with world.services.engine.connect() as conn:
        bodies = [bytes(b) for b in conn.execute(select(e.body).order_by(e.seq)).scalars()]
    looks = [b for b in bodies if b'"action":"watch-alerts"' in b]
    assert b'"actor":"operator:cli"' in looks[-1]
    assert f"WatchAlert/{listed[0]['id']}".encode() in looks[-1]
