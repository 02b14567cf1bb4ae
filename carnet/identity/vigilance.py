"""The vigilance queue's operations on the master patient index: list items, merge (reversibly,
with Patient.link replaced-by / replaces), unmerge and dismiss, and attaching or releasing the
documents a merge or dismissal resolves: the Vigilance service, which IdentityService holds as
``vigilance`` (a Patient written for a waiting identity releases its documents through it)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from carnet.caller import RequestContext
from carnet.crypto.envelope import DataKeys
from carnet.db.engine import reading
from carnet.fhir.dates import utc_now
from carnet.fhir.errors import FhirError, Issue
from carnet.fhir.repository import StoredResource
from carnet.fhir.service import FhirService, FhirSession
from carnet.identity.decisions import VigilanceError
from carnet.identity.distinct import Successor, ins_differ, no_successor
from carnet.identity.held import hand_over, holds, keep_in_sight, open_held
from carnet.identity.models import identity, identity_merge, quarantine, vigilance_item
from carnet.identity.moves import move_references
from carnet.policy.authors import blocked_author, set_author

log = logging.getLogger("carnet.identity")


def dismissed_pairs(conn: Connection, ids: Collection[str] | None = None) -> set[frozenset[str]]:
    """Pairs of identities a human found to be different people (dismissed items), optionally
    only those between ``ids``."""
    item = vigilance_item.c
    query = select(item.identity_id, item.candidate_id).where(
        item.state == "dismissed", item.candidate_id.is_not(None)
    )
    if ids is not None:
        query = query.where(item.identity_id.in_(list(ids)), item.candidate_id.in_(list(ids)))
    return {frozenset((a, b)) for a, b in conn.execute(query)}


def _key(ref: str) -> tuple[str, str]:
    res_type, res_id = ref.split("/", 1)
    return res_type, res_id


OWNER = "identity"  # data key of the index's traits and quarantined documents


def attach_document(
    session: FhirSession,
    res_type: str,
    document: dict[str, Any],
    patient_id: str,
    res_id: str | None = None,
) -> StoredResource:
    """Store ``document`` in ``patient_id``'s record (its subject set to that Patient), inside the
    caller's session: a deposit linked at once, or a held document released."""
    body = dict(document)
    ref = {"reference": f"Patient/{patient_id}"}
    if res_type == "Patient":
        raise VigilanceError("a Patient is not a document; resolve it instead")
    keys = [k for k in ("subject", "patient") if k in body] or ["subject"]
    for key in keys:
        body[key] = ref
    body.pop("id", None)
    return session.create(res_type, body, None, new_id=res_id).stored


def patient_live(session: FhirSession, patient_id: str) -> bool:
    """Whether the Patient an identity names still exists: a document is never filed under a
    deleted Patient (a record no one reads), neither by a deposit nor by a release."""
    current = session.current("Patient", patient_id)
    return current is not None and not current.deleted


class _RefusalError(FhirError):
    """A VigilanceError carried through the FHIR session, which audits it with its status."""

    def __init__(self, error: VigilanceError) -> None:
        super().__init__(error.status, [Issue("processing", str(error))])
        self.error = error


class Vigilance:
    """The vigilance queue: list items, merge, unmerge, dismiss, release held documents."""

    def __init__(
        self,
        fhir: FhirService,
        data_keys: DataKeys,
        engine: Engine,
        *,
        successor: Callable[[], Successor] = lambda: no_successor,
    ) -> None:
        self.fhir = fhir
        self.data_keys = data_keys
        self.engine = engine  # the vigilance queue's own reads (no resource rows)
        self._successor = successor  # the register's NIA -> NIR replacements, asked when needed

    @contextmanager
    def _session(self, action: str, ctx: RequestContext) -> Iterator[FhirSession]:
        """The action's FHIR session; a refusal (VigilanceError) is audited with its own status
        (404, 409), as the session audits a FhirError, not as a server failure (500)."""
        try:
            with self.fhir.session(ctx, action, "Patient", None) as session:
                try:
                    yield session
                except VigilanceError as exc:
                    raise _RefusalError(exc) from exc
        except _RefusalError as refused:
            raise refused.error from None

    @contextmanager
    def _refusing(self, action: str, ctx: RequestContext) -> Iterator[None]:
        """A refusal decided before the action's session opens is audited all the same."""
        try:
            yield
        except VigilanceError as exc:
            self.fhir.record_failure(ctx, action, "Patient", None, exc.status)
            raise

    # -- vigilance queue --------------------------------------------------------------------------

    def queue(self, state: str = "open") -> list[dict[str, Any]]:
        """Vigilance items in ``state`` (oldest first), with their evidence and quarantine count."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(vigilance_item)
                .where(vigilance_item.c.state == state)
                .order_by(vigilance_item.c.created_at)
            ).all()
            out = []
            for row in rows:
                held = conn.execute(
                    select(quarantine.c.id).where(
                        quarantine.c.identity_id == row.identity_id,
                        quarantine.c.released_at.is_(None),
                    )
                ).all()
                out.append(
                    {
                        "id": row.id,
                        "kind": row.kind,
                        "state": row.state,
                        "identity": row.identity_id,
                        "candidate": row.candidate_id,
                        "weight": row.weight,
                        "evidence": json.loads(row.evidence),
                        "quarantined": [h.id for h in held],
                        "createdAt": row.created_at.isoformat(),
                    }
                )
        return out

    def _open_item(self, conn: Connection, item_id: str) -> Any:
        row = conn.execute(select(vigilance_item).where(vigilance_item.c.id == item_id)).first()
        if row is None:
            raise VigilanceError(f"vigilance item {item_id} is not known", 404)
        if row.state != "open":
            raise VigilanceError(f"vigilance item {item_id} is already {row.state}")
        return row

    def _identity_row(self, conn: Connection, ident_id: str) -> Any:
        row = conn.execute(select(identity).where(identity.c.id == ident_id)).first()
        if row is None:
            raise VigilanceError(f"identity {ident_id} is not known", 404)
        return row

    def _refuse_two_people(self, conn: Connection, source: Any, target: Any) -> None:
        """Two valid INS that differ are two people, whoever decides: a merge of two identified
        people carrying different INS (an item's best candidate can be a homonym with her own
        INS) is refused, unless the register says the NIA was replaced by that NIR. An identity
        that holds only an INS (documents deposited under an unknown INS, no traits) is no
        person: the officer still decides whose record its documents join."""
        if source.ins_hash is None or target.ins_hash is None or source.ins_hash == target.ins_hash:
            return
        records = []
        for row in (source, target):
            data = json.loads(self.data_keys.decrypt(conn, OWNER, row.traits, row.id.encode()))
            if data.get("n") is None:
                return
            records.append({"ins": data["i"]})
        if ins_differ(records[0], records[1], self._successor()):
            raise VigilanceError(
                f"identities {source.id} and {target.id} carry two different INS: two people, "
                "never merged"
            )

    def _close(self, conn: Connection, item_id: str, state: str, actor: str) -> None:
        conn.execute(
            update(vigilance_item)
            .where(vigilance_item.c.id == item_id)
            .values(state=state, resolved_at=utc_now(), resolved_by=actor)
        )

    def release(
        self, session: FhirSession, ident_id: str, patient_id: str
    ) -> list[tuple[str, str]]:
        """Attach the documents held for ``ident_id`` to ``patient_id``: (quarantine id, Type/id)."""
        unit = session.unit
        released: list[tuple[str, str]] = []
        rows = unit.conn.execute(
            select(quarantine).where(
                quarantine.c.identity_id == ident_id, quarantine.c.released_at.is_(None)
            )
        ).all()
        for row in rows:
            clear = self.data_keys.decrypt(unit.conn, OWNER, row.body, row.id.encode())
            body, depositor = open_held(clear)
            if blocked_author(unit.conn, depositor, patient_id):
                # The patient blocked the depositor: their document stays held, in no record,
                # as their direct deposit would have been refused.
                log.info("quarantine %s stays held: its depositor is blocked", row.id)
                continue
            stored = attach_document(session, row.res_type, body, patient_id)
            set_author(unit.conn, stored.res_type, stored.res_id, depositor)
            released.append((row.id, f"{stored.res_type}/{stored.res_id}"))
            unit.conn.execute(
                update(quarantine)
                .where(quarantine.c.id == row.id)
                .values(released_to=patient_id, released_at=utc_now())
            )
        return released

    def _set_links(
        self, session: FhirSession, source_pid: str, target_pid: str, *, add: bool
    ) -> None:
        for pid, other, kind in (
            (source_pid, target_pid, "replaced-by"),
            (target_pid, source_pid, "replaces"),
        ):
            stored = session.current("Patient", pid)
            if stored is None or stored.body is None:
                continue
            body = dict(stored.body)
            links = [
                lk
                for lk in body.get("link", [])
                if lk.get("other", {}).get("reference") != f"Patient/{other}"
            ]
            if add:
                links.append({"other": {"reference": f"Patient/{other}"}, "type": kind})
                if kind == "replaced-by":
                    body["active"] = False
            elif kind == "replaced-by":
                body["active"] = True
            if links:
                body["link"] = links
            else:
                body.pop("link", None)
            session.update("Patient", pid, body, None)

    def merge(
        self,
        source_id: str,
        target_id: str,
        *,
        actor: str,
        item_id: str | None = None,
        ctx: RequestContext,
    ) -> dict[str, Any]:
        """Merge identity ``source_id`` into ``target_id`` (reversible by :meth:`unmerge`).

        The source becomes "merged" (replaced-by the target); if both have Patients, their
        Patient.link carry replaced-by / replaces; quarantined documents of the source are attached
        to the target's Patient.
        """
        if source_id == target_id:
            with self._refusing("identity-merge", ctx):
                raise VigilanceError("an identity cannot be merged into itself")
        with self._session("identity-merge", ctx) as session:
            unit = session.unit
            conn = unit.conn
            if item_id is not None:
                self._open_item(conn, item_id)
            source = self._identity_row(conn, source_id)
            target = self._identity_row(conn, target_id)
            for row in (source, target):
                if row.state == "merged":
                    raise VigilanceError(f"identity {row.id} is already merged into another")
            self._refuse_two_people(conn, source, target)
            if target.patient_id and not patient_live(session, target.patient_id):
                # Its held documents would be released under a record that no longer exists
                # (a deposit for that identity is held for this very reason).
                raise VigilanceError(
                    f"identity {target.id}'s Patient was deleted: nothing is merged into it"
                )
            conn.execute(
                update(identity)
                .where(identity.c.id == source_id)
                .values(state="merged", merged_into=target_id, updated_at=utc_now())
            )
            moved: list[str] = []
            if source.patient_id and target.patient_id:
                self._set_links(session, source.patient_id, target.patient_id, add=True)
                moved = move_references(session, source.patient_id, target.patient_id)
            released = []
            if target.patient_id:
                released = self.release(session, source_id, target.patient_id)
            kept = hand_over(conn, source_id, target_id)
            merge_id = str(uuid.uuid4())
            conn.execute(
                insert(identity_merge).values(
                    id=merge_id,
                    source_id=source_id,
                    target_id=target_id,
                    item_id=item_id,
                    actor=actor,
                    merged_at=utc_now(),
                    moved=json.dumps({"moved": moved, "released": released, "held": kept}),
                )
            )
            if item_id is not None:
                self._close(conn, item_id, "merged", actor)
            # Every other item still open on the source is decided too: dismissed later, it
            # would make a merged identity active again, one person with two live identities.
            conn.execute(
                update(vigilance_item)
                .where(vigilance_item.c.identity_id == source_id, vigilance_item.c.state == "open")
                .values(state="merged", resolved_at=utc_now(), resolved_by=actor)
            )
            if target.patient_id:
                keep_in_sight(conn, target_id, "held after merge: depositor blocked")
        log.info("identity %s merged into %s (merge %s)", source_id, target_id, merge_id)
        return {
            "merge": merge_id,
            "source": source_id,
            "target": target_id,
            "released": len(released),
            "moved": len(moved),
        }

    def merge_item(self, item_id: str, *, actor: str, ctx: RequestContext) -> dict[str, Any]:
        """Resolve a vigilance item by merging its pending identity into its candidate."""
        with self._refusing("identity-merge", ctx), reading(self.engine) as conn:
            row = self._open_item(conn, item_id)
            if row.candidate_id is None:
                raise VigilanceError(f"vigilance item {item_id} has no candidate to merge into")
        return self.merge(row.identity_id, row.candidate_id, actor=actor, item_id=item_id, ctx=ctx)

    def unmerge(self, merge_id: str, *, actor: str, ctx: RequestContext) -> None:
        """Undo a merge: the source identity is active again, the Patient links are removed, the
        resources the merge moved go back to the source Patient, and the documents it released from
        quarantine go to the source Patient too (or back into quarantine when it has none).
        """
        with self._session("identity-unmerge", ctx) as session:
            unit = session.unit
            conn = unit.conn
            row = conn.execute(
                select(identity_merge).where(identity_merge.c.id == merge_id)
            ).first()
            if row is None:
                raise VigilanceError(f"merge {merge_id} is not known", 404)
            if row.undone_at is not None:
                raise VigilanceError(f"merge {merge_id} was already undone")
            source = self._identity_row(conn, row.source_id)
            target = self._identity_row(conn, row.target_id)
            if target.state == "merged":
                # What this merge moved has moved on with the target: undone alone, it would
                # leave the source active with an empty record and its items in another's.
                raise VigilanceError(
                    f"identity {target.id} was merged into another since: undo that merge first"
                )
            conn.execute(
                update(identity)
                .where(identity.c.id == row.source_id)
                .values(state="active", merged_into=None, updated_at=utc_now())
            )
            if source.patient_id and target.patient_id:
                self._set_links(session, source.patient_id, target.patient_id, add=False)
            self._move_back(session, row, source.patient_id, target.patient_id)
            held = json.loads(row.moved).get("held", []) if row.moved else []
            if held:
                # Still held where the merge handed them: the source's again, still in sight.
                conn.execute(
                    update(quarantine)
                    .where(quarantine.c.id.in_(held), quarantine.c.released_at.is_(None))
                    .values(identity_id=row.source_id)
                )
            conn.execute(
                update(identity_merge)
                .where(identity_merge.c.id == merge_id)
                .values(undone_at=utc_now())
            )
            if row.item_id is not None:
                conn.execute(
                    update(vigilance_item)
                    .where(vigilance_item.c.id == row.item_id)
                    .values(state="unmerged", resolved_at=utc_now(), resolved_by=actor)
                )
            if held:
                keep_in_sight(conn, row.source_id, "held after unmerge: depositor blocked")
        log.info("merge %s undone", merge_id)

    def _move_back(
        self, session: FhirSession, row: Any, source_pid: str | None, target_pid: str
    ) -> None:
        unit = session.unit
        done = json.loads(row.moved) if row.moved else {"moved": [], "released": []}
        keys = [_key(ref) for ref in done["moved"]]
        if source_pid and target_pid and keys:
            move_references(session, target_pid, source_pid, keys)
        for q_id, ref in done["released"]:
            if source_pid:
                move_references(session, target_pid, source_pid, [_key(ref)])
                destination = source_pid
            else:
                res_type, res_id = _key(ref)
                session.delete(res_type, res_id)
                destination = None
            unit.conn.execute(
                update(quarantine)
                .where(quarantine.c.id == q_id)
                .values(
                    released_to=destination,
                    released_at=utc_now() if destination else None,
                )
            )

    def dismiss(self, item_id: str, *, actor: str, ctx: RequestContext) -> int:
        """Not the same person: the pending identity becomes a distinct identity.

        Its quarantined documents are attached to its own Patient when it has one (else they stay
        in quarantine, waiting for that Patient); refused while documents are held for it and
        its Patient was deleted. Returns how many documents were released.
        """
        with self._session("identity-dismiss", ctx) as session:
            unit = session.unit
            row = self._open_item(unit.conn, item_id)
            ident = self._identity_row(unit.conn, row.identity_id)
            if ident.state == "merged":  # an item left open by a merge made before it closed them
                raise VigilanceError(f"identity {ident.id} was merged: undo the merge first")
            pid = ident.patient_id
            if pid and not patient_live(session, pid) and holds(unit.conn, ident.id):
                # Its documents would be released under a record that no longer exists (a
                # merge into it is refused for the same reason): they stay held, the item open.
                raise VigilanceError(
                    f"identity {ident.id}'s Patient was deleted: its documents stay held"
                )
            unit.conn.execute(
                update(identity)
                .where(identity.c.id == row.identity_id)
                .values(state="active", updated_at=utc_now())
            )
            released = []
            if ident.patient_id:
                released = self.release(session, row.identity_id, ident.patient_id)
            self._close(unit.conn, item_id, "dismissed", actor)
            if ident.patient_id:
                keep_in_sight(unit.conn, row.identity_id, "still held: depositor blocked")
        log.info("vigilance item %s dismissed", item_id)
        return len(released)
