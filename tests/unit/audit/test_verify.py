"""`verify` detects every kind of tampering with stored events and checkpoints, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256

import pytest
from sqlalchemy import Connection, select, update

from carnet.app import Services
from carnet.audit.events import Actor, Touched, build_event, leaf_data
from carnet.audit.models import audit_checkpoint, audit_event, audit_event_patient, audit_node
from carnet.audit.verify import verify

# Both backends: the audit store sequences with backend-specific locking.
pytestmark = pytest.mark.both_backends

WHO = Actor("dr-1", "127.0.0.1", "care")


def _fill(services: Services, n: int = 40) -> None:
    """n events in three checkpoints; every third one touches two patients."""
    audit = services.audit
    for i in range(n):
        touched = [Touched("Observation", f"o{i}", 1, "p1")]
        if i % 3 == 0:
            touched.append(Touched("Observation", f"q{i}", 2, "p2"))
        audit.append([build_event(WHO, "read", "Observation", 200, touched)])
        if i in (9, 24):
            audit.checkpoint()
    audit.checkpoint()


def _leaf_hash(index: int, body: bytes) -> bytes:
    return sha256(b"\x00" + leaf_data(index, body)).digest()


def _body(conn: Connection, index: int) -> bytes:
    return bytes(
        conn.execute(
            select(audit_event.c.body).where(audit_event.c.leaf_index == index)
        ).scalar_one()
    )


def _edit(conn: Connection) -> None:
    body = _body(conn, 17).replace(b'"dr-1"', b'"dr-2"')
    conn.execute(update(audit_event).where(audit_event.c.leaf_index == 17).values(body=body))


def _edit_and_rehash(conn: Connection) -> None:
    body = _body(conn, 17).replace(b'"dr-1"', b'"dr-2"')
    conn.execute(
        update(audit_event)
        .where(audit_event.c.leaf_index == 17)
        .values(body=body, leaf_hash=_leaf_hash(17, body))
    )


def _delete(conn: Connection) -> None:
    conn.execute(audit_event.delete().where(audit_event.c.leaf_index == 17))


def _delete_last(conn: Connection) -> None:
    conn.execute(audit_event.delete().where(audit_event.c.leaf_index == 39))


def _reorder(conn: Connection) -> None:
    a, b = 17, 18
    conn.execute(update(audit_event).where(audit_event.c.leaf_index == a).values(leaf_index=-1))
    conn.execute(update(audit_event).where(audit_event.c.leaf_index == b).values(leaf_index=a))
    conn.execute(update(audit_event).where(audit_event.c.leaf_index == -1).values(leaf_index=b))


def _insert(conn: Connection) -> None:
    """Shift the tail up by one and slip a forged event in at 17, with a well-formed leaf hash."""
    for index in range(39, 16, -1):
        conn.execute(
            update(audit_event)
            .where(audit_event.c.leaf_index == index)
            .values(leaf_index=index + 1)
        )
    forged = build_event(WHO, "read", "Observation", 200, [])
    conn.execute(
        audit_event.insert().values(
            event_id=forged.event_id,
            body=forged.body,
            leaf_index=17,
            leaf_hash=_leaf_hash(17, forged.body),
        )
    )


def _hide_from_patient(conn: Connection) -> None:
    seq = conn.execute(select(audit_event.c.seq).where(audit_event.c.leaf_index == 18)).scalar_one()
    conn.execute(audit_event_patient.delete().where(audit_event_patient.c.seq == seq))


def _move_to_other_patient(conn: Connection) -> None:
    seq = conn.execute(select(audit_event.c.seq).where(audit_event.c.leaf_index == 19)).scalar_one()
    conn.execute(
        update(audit_event_patient)
        .where(audit_event_patient.c.seq == seq, audit_event_patient.c.patient_id == "p1")
        .values(patient_id="p3")
    )


def _edit_checkpoint(conn: Connection) -> None:
    note = conn.execute(
        select(audit_checkpoint.c.note).where(audit_checkpoint.c.tree_size == 25)
    ).scalar_one()
    conn.execute(
        update(audit_checkpoint)
        .where(audit_checkpoint.c.tree_size == 25)
        .values(note=note.replace("time 20", "time 19"))
    )


CASES: list[tuple[str, Callable[[Connection], None], int | None]] = [
    ("edit", _edit, 17),
    ("edit-and-rehash", _edit_and_rehash, 17),  # found by walking the stored nodes down
    ("delete", _delete, 17),
    ("delete-last", _delete_last, 39),
    ("reorder", _reorder, 17),
    # The forged event at 17 is self-consistent; the first event it displaced (now at 18) is not.
    ("insert", _insert, 18),
    ("hide-from-patient", _hide_from_patient, 18),
    ("move-to-other-patient", _move_to_other_patient, 19),
    ("edit-checkpoint", _edit_checkpoint, None),
]


def test_an_untouched_log_verifies(services: Services) -> None:
    _fill(services)
    report = verify(services.audit)
    assert report.ok, report.problem
    assert (report.events, report.checkpoints, report.pending) == (40, 3, 0)


@pytest.mark.parametrize(("name", "tamper", "first_bad"), CASES, ids=[c[0] for c in CASES])
def test_tampering_is_detected(
    services: Services, name: str, tamper: Callable[[Connection], None], first_bad: int | None
) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        tamper(conn)
    report = verify(services.audit)
    assert not report.ok, name
    assert report.first_bad == first_bad, report.problem


def test_verify_names_edited_event_with_recomputed_leaf(services: Services) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        _edit_and_rehash(conn)
    report = verify(services.audit)
    assert report.first_bad == 17
    assert report.problem is not None and "event 17 was edited" in report.problem


def _rewrite_leaf_node(conn: Connection) -> None:
    """The attacker also rewrites the stored leaf node: the level above no longer vouches for it."""
    _edit_and_rehash(conn)
    conn.execute(
        update(audit_node)
        .where(audit_node.c.level == 0, audit_node.c.idx == 17)
        .values(hash=_leaf_hash(17, _body(conn, 17)))
    )


def _drop_leaf_nodes(conn: Connection) -> None:
    """A log sequenced before leaf nodes were stored."""
    _edit_and_rehash(conn)
    conn.execute(audit_node.delete().where(audit_node.c.level == 0))


@pytest.mark.parametrize("tamper", [_rewrite_leaf_node, _drop_leaf_nodes])
def test_verify_narrows_an_edit_to_what_the_stored_nodes_still_vouch_for(
    services: Services, tamper: Callable[[Connection], None]
) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        tamper(conn)
    report = verify(services.audit)
    assert report.first_bad == 16  # the pair (16, 17): finer than the checkpoint interval
    assert report.problem is not None and "events 16..17 hold an edit" in report.problem


def test_verify_falls_back_to_the_interval_when_nodes_are_gone(services: Services) -> None:
    _fill(services)
    with services.engine.begin() as conn:
        _edit_and_rehash(conn)
        conn.execute(audit_node.delete())
    report = verify(services.audit)
    assert report.first_bad == 10  # the checkpoint interval [10, 25), as the signature locates


def test_pending_events_are_reported_not_failed(sqlite_services: Services) -> None:
    _fill(sqlite_services, 5)
    sqlite_services.audit.append([build_event(WHO, "read", None, 200, [])])
    report = verify(sqlite_services.audit)
    assert report.ok and report.pending == 1 and report.events == 5
