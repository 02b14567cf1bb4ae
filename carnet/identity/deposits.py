"""Deposits: a document (Observation, DocumentReference, ...) that names its patient by identity
rather than by a stored Patient goes through the master patient index before anything is stored.

Its ``subject`` (or ``patient``) is either a contained Patient carrying the traits (``"#p"``), or a
logical reference by identifier only (``{"identifier": {"system": ..., "value": ...}}``):

- contained Patient with strict traits: matched like any identity (:meth:`IdentityService.decide_in`);
  on a link to an identity that has a Patient the document is stored with its subject set to that
  Patient (and the contained Patient dropped); otherwise it is held in quarantine with a vigilance
  item. Without valid strict traits (an unnamed newborn) there is nothing to match: stored as sent;
- INS identifier: looked up in the index (blind hash); exactly one active identity with a Patient
  attaches it, anything else (unknown, several, a pending identity) holds it in quarantine under a
  pending identity that carries only that INS, for a human to merge into the right identity;
- any other identifier: attached when exactly one stored Patient the caller may read has it;
  otherwise it is a logical reference to a Patient held elsewhere, stored as sent (FHIR allows it;
  it is in no record). A caller who may not read the Patient is answered with the subject as sent.

A held document is invisible to every FHIR read and search; the create answers 202 Accepted with an
OperationOutcome naming the quarantine and vigilance item ids (:data:`HELD_CODE`). The hook runs in
the create's transaction (:attr:`FhirService.deposit_hooks`), so a transaction Bundle is atomic.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, insert, select

from carnet.caller import Kind, RequestContext
from carnet.crypto.blind_index import BlindIndexer
from carnet.crypto.envelope import DataKeys
from carnet.fhir.dates import instant, utc_now
from carnet.fhir.errors import FhirError, Issue, conflict, operation_outcome, unprocessable
from carnet.fhir.repository import StoredResource
from carnet.fhir.service import FhirService, FhirSession, WriteResult
from carnet.identity.decisions import (
    IdentityConflict,
    IdentityInput,
    MatchResult,
    Outcome,
    patient_identity,
)
from carnet.identity.distinct import Successor, no_successor
from carnet.identity.held import new_item, seal_held
from carnet.identity.ins import (
    INS_SYSTEMS,
    Ins,
    InvalidIns,
    InvalidTraits,
    check_ins_identifiers,
)
from carnet.identity.ins_anywhere import refuse_ins_of_two_people
from carnet.identity.models import identity, ins_digest, quarantine, vigilance_item
from carnet.identity.vigilance import OWNER, attach_document, patient_live
from carnet.policy.authors import authorship_of

log = logging.getLogger("carnet.identity")

HELD_CODE = "informational"  # OperationOutcome issue code of a held deposit (HTTP 202)
SUBJECT_KEYS = ("subject", "patient")


Decide = Callable[[Connection, IdentityInput], MatchResult]
"""The index's decision for an identity, writing nothing (:meth:`IdentityService.decide_in`)."""
Queue = Callable[[Connection, IdentityInput, MatchResult, "str | None"], MatchResult]
"""Put an identity the index could not link in the vigilance queue, under a pending identity
(:meth:`IdentityService.queue_in`)."""


_DELETED = "the identity's Patient was deleted"


class Deposits:
    """Deposits and the FHIR create hook (:attr:`FhirService.deposit_hooks`); the matching is the
    master patient index's, given as ``decide`` and ``queue``."""

    def __init__(
        self,
        fhir: FhirService,
        data_keys: DataKeys,
        blind: BlindIndexer,
        *,
        decide: Decide,
        queue: Queue,
        successor: Callable[[], Successor] = lambda: no_successor,
    ) -> None:
        self.fhir = fhir
        self._successor = successor  # the register's NIA -> NIR replacements, asked when needed
        self.data_keys = data_keys
        self.blind = blind
        self._decide = decide
        self._queue = queue

    # -- deposits ---------------------------------------------------------------------------------

    def deposit(
        self,
        inp: IdentityInput,
        res_type: str,
        document: dict[str, Any],
        *,
        ctx: RequestContext,
    ) -> MatchResult:
        """Attach a document to the identity it carries, or quarantine it.

        On a link to an identity with a Patient, the document is stored with its subject set to that
        Patient. Otherwise it is kept encrypted in quarantine, visible only to the vigilance queue.
        """
        with self.fhir.session(ctx, "identity-deposit", "Patient", None) as session:
            return self.deposit_in(session, inp, res_type, document)[0]

    def deposit_in(
        self,
        session: FhirSession,
        inp: IdentityInput,
        res_type: str,
        document: dict[str, Any],
        res_id: str | None = None,
    ) -> tuple[MatchResult, StoredResource | None]:
        """:meth:`deposit` inside a caller's unit; the stored resource when it was attached."""
        unit, ctx = session.unit, session.ctx
        result = self._decide(unit.conn, inp)
        if result.outcome is Outcome.LINK and result.patient_id is not None:
            if patient_live(session, result.patient_id):
                return result, attach_document(
                    session, res_type, document, result.patient_id, res_id
                )
            result = MatchResult(Outcome.REVIEW, _DELETED, result.candidates)
        if result.outcome is Outcome.LINK:
            # A known identity without a Patient yet: held until its Patient is written.
            assert result.identity_id is not None
            queued = result
        else:
            queued = self._queue(unit.conn, inp, result, None)
        assert queued.identity_id is not None
        q_id = self._hold(unit.conn, ctx, queued.identity_id, res_type, document)
        return (
            MatchResult(
                queued.outcome,
                queued.reason,
                queued.candidates,
                queued.identity_id,
                None,
                queued.item_id,
                q_id,
            ),
            None,
        )

    def _hold(
        self,
        conn: Connection,
        ctx: RequestContext,
        pending: str,
        res_type: str,
        document: dict[str, Any],
    ) -> str:
        q_id = str(uuid.uuid4())
        # The depositor is kept with the document: its author when released, whoever releases it.
        body = seal_held(document, authorship_of(ctx.principal))
        conn.execute(
            insert(quarantine).values(
                id=q_id,
                identity_id=pending,
                res_type=res_type,
                body=self.data_keys.encrypt(conn, OWNER, body, q_id.encode()),
                created_at=utc_now(),
            )
        )
        log.info("%s quarantined as %s for identity %s", res_type, q_id, pending)
        return q_id

    def _deposit_by_identifier(
        self,
        session: FhirSession,
        identifier: dict[str, Any],
        res_type: str,
        document: dict[str, Any],
        res_id: str,
    ) -> tuple[MatchResult, StoredResource | None] | None:
        unit, ctx = session.unit, session.ctx
        system, value = str(identifier.get("system", "")), str(identifier.get("value", ""))
        if system not in INS_SYSTEMS:
            # Among the Patients the caller may read: a deposit is no oracle of who is known here.
            query = f"identifier={system}|{value}"
            found = session.conditional_match("Patient", query)
            if found is None:
                return None  # a logical reference to a Patient held elsewhere: stored as sent
            stored = attach_document(session, res_type, document, found.res_id, res_id)
            return MatchResult(Outcome.LINK, "known identifier", (), None, found.res_id), stored
        try:
            ins = Ins.create(system, value)
        except InvalidTraits as exc:
            raise unprocessable([Issue("value", str(exc), "subject.identifier")]) from None
        rows = unit.conn.execute(
            select(identity).where(
                identity.c.ins_hash == ins_digest(self.blind, ins), identity.c.state != "merged"
            )
        ).all()
        deleted = False
        if len(rows) == 1 and rows[0].state == "active" and rows[0].patient_id:
            found_id, pid = rows[0].id, rows[0].patient_id
            if patient_live(session, pid):
                stored = attach_document(session, res_type, document, pid, res_id)
                return MatchResult(Outcome.LINK, "known INS", (), found_id, pid), stored
            deleted = True
        waiting = [r for r in rows if r.patient_id is None]
        if len(rows) == 1 and waiting:
            # Already waiting for a human (an earlier deposit, or a known identity without a
            # Patient yet): held with the others, under the same item.
            pending = rows[0].id
            item_id = unit.conn.execute(
                select(vigilance_item.c.id).where(
                    vigilance_item.c.identity_id == pending, vigilance_item.c.state == "open"
                )
            ).scalar()
            q_id = self._hold(unit.conn, ctx, pending, res_type, document)
            reason = "INS already waiting for vigilance"
            return MatchResult(Outcome.REVIEW, reason, (), pending, None, item_id, q_id), None
        reason = _DELETED if deleted else ("INS known more than once" if rows else "unknown INS")
        pending = self._bare_identity(unit.conn, ins)
        item_id = new_item(unit.conn, "unknown", pending, None, None, {"reason": reason})
        q_id = self._hold(unit.conn, ctx, pending, res_type, document)
        return MatchResult(Outcome.REVIEW, reason, (), pending, None, item_id, q_id), None

    def _bare_identity(self, conn: Connection, ins: Ins) -> str:
        """A pending identity that holds only an identifier (no traits to match on)."""
        ident_id = str(uuid.uuid4())
        payload: dict[str, Any] = {"n": None, "g": [], "d": None, "s": None, "p": None, "u": []}
        payload["i"] = [ins.system, ins.value]
        now = utc_now()
        conn.execute(
            insert(identity).values(
                id=ident_id,
                patient_id=None,
                status="PROV",
                state="pending",
                ins_hash=ins_digest(self.blind, ins),
                traits=self.data_keys.encrypt(
                    conn, OWNER, json.dumps(payload).encode(), ident_id.encode()
                ),
                merged_into=None,
                created_at=now,
                updated_at=now,
            )
        )
        return ident_id

    # -- the FHIR create hook ---------------------------------------------------------------------

    def _answer_as_sent(
        self,
        session: FhirSession,
        stored: StoredResource,
        sent: dict[str, Any],
        key: str,
    ) -> StoredResource:
        """The attached item as answered to its depositor: with the Patient reference if they may
        read that Patient, else with the subject as they sent it (no Patient id to learn)."""
        if stored.body is None:
            return stored
        reference = str((stored.body.get(key) or {}).get("reference", ""))
        pid = reference.removeprefix("Patient/")
        if pid and session.conditional_match("Patient", f"_id={pid}") is not None:
            return stored
        body = dict(stored.body)
        body[key] = sent[key]
        if "contained" in sent:
            body["contained"] = sent["contained"]  # the subject "#p" names its contained Patient
        return replace(stored, body=body)

    def on_create(
        self, session: FhirSession, res_type: str, res_id: str, body: dict[str, Any]
    ) -> WriteResult | None:
        """Take over the create of a resource whose Patient is contained or given by identifier."""
        ctx = session.ctx
        key = next((k for k in SUBJECT_KEYS if isinstance(body.get(k), dict)), None)
        if key is None:
            return None
        ref: dict[str, Any] = body[key]
        target = ref.get("reference")
        by_identity = (isinstance(target, str) and target.startswith("#")) or (
            target is None and isinstance(ref.get("identifier"), dict)
        )
        if by_identity and ctx.principal.kind in (Kind.PERSON, Kind.APP):
            # Persons and their apps write in records they are or represent, named by reference:
            # matching for them would tell which identities are known (a link refused 403, an
            # unknown one held 202) and let anyone fill the vigilance queue.
            raise FhirError(
                403,
                [Issue("forbidden", "a document naming its patient by identity comes from care")],
                rule="identity-deposit",
            )
        if isinstance(target, str) and target.startswith("#"):
            contained = [
                c
                for c in body.get("contained", [])
                if c.get("resourceType") == "Patient" and c.get("id") == target[1:]
            ]
            if not contained:
                return None
            patient = {k: v for k, v in contained[0].items() if k != "id"}
            try:
                inses = check_ins_identifiers(patient)
            except InvalidIns as exc:
                # A broken INS is refused wherever it comes in, never stored (not even contained).
                raise unprocessable([Issue("value", str(exc), f"{key}.identifier")]) from None
            # Two people's INS: matched on the first, the document could reach the wrong record.
            refuse_ins_of_two_people(inses, self._successor(), "contained.identifier")
            try:
                inp = patient_identity(patient)
            except InvalidTraits:
                # No strict traits to match on (an unnamed newborn, an anonymous subject): stored
                # as sent, self-contained, in no record; as a Patient without traits is.
                return None
            document = dict(body)
            others = [c for c in body["contained"] if c is not contained[0]]
            if others:
                document["contained"] = others
            else:
                document.pop("contained")
            try:
                result, stored = self.deposit_in(session, inp, res_type, document, res_id)
            except IdentityConflict as exc:
                raise conflict(str(exc)) from None
        elif target is None and isinstance(ref.get("identifier"), dict):
            if ref.get("type", "Patient") != "Patient":
                return None
            deposited = self._deposit_by_identifier(
                session, ref["identifier"], res_type, body, res_id
            )
            if deposited is None:
                return None
            result, stored = deposited
        else:
            return None
        if stored is not None:
            return WriteResult(self._answer_as_sent(session, stored, body, key), created=True)
        session.record("create", res_type, [])
        assert result.quarantine_id is not None
        held = StoredResource(
            res_type, result.quarantine_id, 0, instant(utc_now()), False, "HELD", None, None
        )
        message = (
            f"held for identity vigilance ({result.reason}): quarantine {result.quarantine_id}, "
            f"vigilance item {result.item_id or 'none'}; not in any record until resolved"
        )
        outcome = operation_outcome([Issue(HELD_CODE, message, key, severity="information")])
        return WriteResult(held, created=False, held=outcome)
