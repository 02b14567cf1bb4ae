"""The patient's access history as the portal shows it: who (name, profession), why (care,
emergency with its reason), filters, CSV, each entry verified against the signed checkpoint and
downloadable as a proof the documented independent verifier accepts; never another's history."""

from __future__ import annotations

import base64
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carnet.app import Services
from carnet.audit.inclusion import Inclusion, check_inclusion
from carnet.audit.models import audit_event
from carnet.db.engine import writing
from carnet.record.history import (
    CARE,
    EMERGENCY,
    MEDECIN_TRAITANT,
    AccessHistory,
    HistoryFilter,
    HistoryUnavailableError,
    as_csv,
)
from tests.spec.test_audit import docs_verifier
from tests.support.module_services import module_services_fixture
from tests.unit.record.controls_setup import ER_DOCTOR, GP, Record, small_record


def _history(services: Services) -> AccessHistory:
    return AccessHistory(services.audit, services.controls, services.accounts, services.fhir)


shared = module_services_fixture()  # the tests read one record's history: built once


@pytest.fixture(scope="module")
def record(shared: Services) -> Record:
    services = shared
    record = small_record(services)
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)
    services.controls.declare_care(record.as_patient, None, GP, medecin_traitant=True)
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)  # now as the MT
    services.emergency.break_glass(record.as_er, record.patient, "unconscious")
    services.fhir.read("DocumentReference", record.doc, ctx=record.as_er)
    return record


def test_history_names_the_professional_and_says_why(shared: Services, record: Record) -> None:
    services = shared
    entries = _history(services).entries(record.as_patient, record.patient)
    gp_reads = [e for e in entries if e.rpps == GP and e.action == "read"]
    assert {(e.name, e.profession) for e in gp_reads} == {("Dr Jeanne Martin", "physician")}
    assert [e.why for e in gp_reads] == [MEDECIN_TRAITANT, CARE]  # newest first
    gp_read = gp_reads[-1]
    assert gp_read.items == [f"DocumentReference/{record.doc}"]
    er_read = next(e for e in entries if e.rpps == ER_DOCTOR and e.action == "read")
    assert (er_read.why, er_read.emergency_reason) == (EMERGENCY, "unconscious")
    assert entries == sorted(entries, key=lambda e: e.time, reverse=True)


def test_history_filters_by_kind_professional_and_period(shared: Services, record: Record) -> None:
    services = shared
    history = _history(services)
    care = history.entries(record.as_patient, record.patient, HistoryFilter(kind=CARE))
    assert {e.why for e in care} == {CARE, MEDECIN_TRAITANT}  # the médecin traitant gives care
    emergency = history.entries(record.as_patient, record.patient, HistoryFilter(kind=EMERGENCY))
    assert emergency and {e.rpps for e in emergency} == {ER_DOCTOR}
    by_gp = history.entries(record.as_patient, record.patient, HistoryFilter(professional=GP))
    assert by_gp and {e.rpps for e in by_gp} == {GP}
    assert (
        history.entries(
            record.as_patient, record.patient, HistoryFilter(until=datetime(2000, 1, 1, tzinfo=UTC))
        )
        == []
    )


def test_history_csv_has_a_row_per_entry_and_no_formula(shared: Services, record: Record) -> None:
    services = shared
    entries = _history(services).entries(record.as_patient, record.patient)
    text = as_csv(entries)
    lines = text.strip().split("\r\n")
    assert len(lines) == len(entries) + 1
    assert "Dr Jeanne Martin" in text and "unconscious" in text


def test_each_entry_verifies_against_the_signed_checkpoint(
    shared: Services, record: Record, tmp_path: Path
) -> None:
    services = shared
    history = _history(services)
    services.audit.checkpoint()
    entry = next(e for e in history.entries(record.as_patient, record.patient) if e.rpps == GP)
    check = history.verify(record.as_patient, record.patient, entry.event_id)
    assert check.result is Inclusion.VERIFIED and check.tree_size
    proof = tmp_path / "preuve.ndjson"
    proof.write_bytes(history.proof(record.as_patient, record.patient, entry.event_id))
    script = tmp_path / "verify_export.py"
    script.write_text(docs_verifier(), encoding="utf-8")
    key = base64.b64encode(services.audit.public_key).decode()
    done = subprocess.run(
        [sys.executable, str(script), str(proof), key], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("OK: 1 events"), done.stdout


def test_an_edited_event_fails_verification_and_an_unsealed_one_is_pending(
    shared: Services, record: Record
) -> None:
    services = shared
    history = _history(services)
    services.audit.checkpoint()
    entry = history.entries(record.as_patient, record.patient)[-1]
    logged, checkpoint = services.audit.event(entry.event_id, record.as_patient)
    key = services.audit.public_key
    edited = replace(logged, body=logged.body.replace(b'"outcome":', b'"outcome" :'))
    assert check_inclusion(edited, checkpoint, key, record.patient).result is Inclusion.FAILED
    unsealed = replace(logged, leaf_index=None, proof=None)
    assert check_inclusion(unsealed, checkpoint, key, record.patient).result is Inclusion.PENDING


def test_another_patients_history_answers_as_missing_and_is_audited(
    shared: Services, record: Record
) -> None:
    services = shared
    history = _history(services)
    before = _count(services)
    with pytest.raises(HistoryUnavailableError):
        history.entries(record.as_other, record.patient)
    assert _count(services) == before + 1  # the refusal is an event of its own
    mine = history.entries(record.as_patient, record.patient)
    with pytest.raises(HistoryUnavailableError):  # an event of this record, asked by another
        history.verify(record.as_other, record.other, mine[0].event_id)
    with pytest.raises(HistoryUnavailableError):
        history.proof(record.as_other, record.patient, mine[0].event_id)


def _count(services: Services) -> int:
    services.audit.drain()
    with services.engine.connect() as conn:
        return len(conn.execute(audit_event.select()).all())


def test_a_read_still_in_the_spool_shows_as_being_sealed(shared: Services, record: Record) -> None:
    """A read answered while a writer held the lock waits in the audit spool: the history shows
    it at once, without a proof ("en cours de scellement"), and "Vérifier" says pending."""
    services = shared
    history = _history(services)
    holder = writing(services.engine)
    holder.__enter__()  # another writer holds SQLite's write lock
    try:
        services.fhir.read("DocumentReference", record.doc, ctx=record.as_gp)  # spooled
        newest = next(
            e
            for e in history.entries(record.as_patient, record.patient)
            if e.rpps == GP and e.action == "read"
        )
        assert newest.sealed is False
        check = history.verify(record.as_patient, record.patient, newest.event_id)
        assert check.result is Inclusion.PENDING
    finally:
        holder.__exit__(None, None, None)
    check = history.verify(record.as_patient, record.patient, newest.event_id)
    assert check.result is Inclusion.VERIFIED  # drained and sealed once the lock is free


def test_a_page_of_history_is_the_whole_history_cut_at_that_page(
    shared: Services, record: Record
) -> None:
    """The portal's page describes only its own entries (a busy record's list costs its page,
    not its year): each page, and the count, are those of the whole history, the emergency
    reason included when the break-glass event is on an older page."""
    history = _history(shared)
    upto = HistoryFilter(until=datetime.now(UTC))  # the reads below add entries after it
    every = history.entries(record.as_patient, record.patient, upto)
    assert len(every) >= 5
    for number in range(1, len(every) + 2):
        page, total = history.page(record.as_patient, record.patient, upto, number, 1)
        assert total == len(every)
        assert page == every[number - 1 : number]
    emergency = [e for e in every if e.emergency_reason == "unconscious"]
    assert emergency and emergency[0].action == "read"
    assert history.page(record.as_patient, record.patient, None, 1, 3)[1] > len(every)
    with pytest.raises(HistoryUnavailableError):
        history.page(record.as_other, record.patient, None, 1, 3)
