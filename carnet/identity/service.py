"""The master patient index: matching, the vigilance queue, quarantine and reversible merges.

Every incoming identity goes through :meth:`IdentityService.resolve` (a Patient) or
:meth:`Deposits.deposit` (a document carrying a patient identity, :mod:`carnet.identity.deposits`):

1. a known matricule INS leads to its identity, if the traits agree (else: the vigilance queue);
   a QUAL identity's INS must also be confirmed by the reference register (else: refused);
2. otherwise the identity is scored (Fellegi-Sunter, :mod:`carnet.identity.matching`) against the
   identities sharing a blocking key (:mod:`carnet.identity.blocking`);
3. two thresholds decide: link (weight >= link threshold, one clear candidate, no disagreement on
   first name, sex, birth date or birth name), the vigilance queue (>= review threshold), or a new
   identity. A document is attached only on a link; otherwise it is quarantined (encrypted, in no
   record) until a human merges or dismisses the vigilance item.

All writes run in one FHIR unit (one transaction) so a merge's Patient.link updates, the index rows
and the released documents commit together. Stored traits are encrypted under the "identity" data key;
blocking keys and the INS are blind hashes. Logs and vigilance evidence carry ids and levels only.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from carnet.caller import RequestContext
from carnet.crypto.blind_index import BlindIndexer
from carnet.crypto.envelope import DataKeys
from carnet.db.engine import reading, writing
from carnet.fhir.dates import utc_now
from carnet.fhir.errors import Issue, conflict, unprocessable
from carnet.fhir.repository import StoredResource
from carnet.fhir.service import FhirService, FhirSession
from carnet.identity.batch import IndexBatch
from carnet.identity.blocking import blocking_keys, query_keys
from carnet.identity.decisions import (
    Candidate,
    IdentityConflict,
    IdentityInput,
    MatchResult,
    Outcome,
    StoredIdentity,
    VigilanceError,
    choose,
    patient_identity,
    vetoed,
)
from carnet.identity.deposits import Deposits
from carnet.identity.distinct import (
    Successor,
    ins_differ,
    no_successor,
    other_first_names_differ,
)
from carnet.identity.held import new_item
from carnet.identity.ins import (
    Ins,
    InsStatus,
    InvalidIns,
    InvalidTraits,
    check_ins_identifiers,
)
from carnet.identity.ins_anywhere import refuse_ins_of_two_people
from carnet.identity.matching import VETO, MatchModel, identity_model
from carnet.identity.models import (
    identity,
    identity_block,
    identity_model_params,
    ins_digest,
)
from carnet.identity.register import IdentityRegister
from carnet.identity.updates import PatientUpdates
from carnet.identity.vigilance import OWNER, Vigilance, dismissed_pairs

__all__ = [
    "IdentityConflict",
    "IdentityInput",
    "IdentityService",
    "MatchResult",
    "Outcome",
    "VigilanceError",
    "choose",
    "patient_identity",
    "vetoed",
]

log = logging.getLogger("carnet.identity")

_BLIND_KIND = "mpi"
_VETO = VETO


class IdentityService:
    """The master patient index over the database behind ``fhir``; documents naming their patient
    by identity go through ``deposits``, which asks it to decide; the vigilance queue (merge,
    unmerge, dismiss) is ``vigilance``; the whole-index work (bulk loading, training, dedupe) is
    ``batch``; what a write may change of an identity it holds is ``updates``."""

    def __init__(
        self,
        fhir: FhirService,
        data_keys: DataKeys,
        blind: BlindIndexer,
        *,
        engine: Engine,
        link_threshold: float,
        review_threshold: float,
        register: IdentityRegister | None = None,
    ) -> None:
        if review_threshold > link_threshold:
            raise ValueError(
                f"identity review threshold {review_threshold} is above the link threshold "
                f"{link_threshold}"
            )
        self.fhir = fhir
        self.engine = engine  # the identity tables' own transactions (no resource rows)
        self.data_keys = data_keys
        self.blind = blind
        self.link_threshold = link_threshold
        self.review_threshold = review_threshold
        self.register = register
        self._model: MatchModel | None = None
        self.vigilance = Vigilance(fhir, data_keys, engine, successor=self.successor)
        self.deposits = Deposits(
            fhir,
            data_keys,
            blind,
            decide=self.decide_in,
            queue=self.queue_in,
            successor=self.successor,
        )
        self.batch = IndexBatch(self)
        self.updates = PatientUpdates(self)

    # -- model ------------------------------------------------------------------------------------

    @property
    def model(self) -> MatchModel:
        """The latest trained model, or the starting parameters."""
        if self._model is None:
            with reading(self.engine) as conn:
                row = conn.execute(
                    select(identity_model_params.c.params)
                    .order_by(identity_model_params.c.id.desc())
                    .limit(1)
                ).first()
            base = identity_model()
            if row is None:
                self._model = base
            else:
                params = json.loads(row.params)
                self._model = base.with_parameters(params["m"], params["u"], params["lambda"])
        return self._model

    def save_model(self, model: MatchModel, pairs: int) -> None:
        """Store trained parameters; later matching uses them."""
        with writing(self.engine) as conn:
            conn.execute(
                insert(identity_model_params).values(
                    params=json.dumps(model.parameters()), pairs=pairs, trained_at=utc_now()
                )
            )
        self._model = model

    # -- storage helpers --------------------------------------------------------------------------

    def _encrypt(self, conn: Connection, ident_id: str, inp: IdentityInput) -> bytes:
        payload = {
            "n": inp.traits.birth_name,
            "g": list(inp.traits.given_names),
            "d": inp.traits.birth_date.isoformat(),
            "s": inp.traits.sex,
            "p": inp.traits.birth_place,
            "u": list(inp.record()["used_name"]),
            "i": None if inp.ins is None else [inp.ins.system, inp.ins.value],
        }
        return self.data_keys.encrypt(conn, OWNER, json.dumps(payload).encode(), ident_id.encode())

    def load(self, conn: Connection, rows: list[Any]) -> list[StoredIdentity]:
        """Stored identity rows with their traits decrypted (in memory only)."""
        out = []
        for row in rows:
            data = json.loads(self.data_keys.decrypt(conn, OWNER, row.traits, row.id.encode()))
            record = {
                "birth_name": data["n"],
                "given_names": data["g"],
                "birth_date": date.fromisoformat(data["d"]) if data["d"] else None,
                "sex": data["s"],
                "birth_place": data["p"],
                "used_name": data["u"],
                "ins": None if data["i"] is None else (data["i"][0], data["i"][1]),
            }
            ins = None if data["i"] is None else Ins(data["i"][0], data["i"][1])
            out.append(StoredIdentity(row.id, row.patient_id, row.status, row.state, record, ins))
        return out

    def new_rows(
        self, conn: Connection, inp: IdentityInput, state: str, patient_id: str | None
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """A new identity's row (traits encrypted, the INS a blind hash) and its blocking rows
        (blind hashes of its blocking keys), for the caller to insert (batch.py inserts many)."""
        ident_id = str(uuid.uuid4())
        now = utc_now()
        row = {
            "id": ident_id,
            "patient_id": patient_id,
            "status": inp.status.value,
            "state": state,
            "ins_hash": None if inp.ins is None else ins_digest(self.blind, inp.ins),
            "traits": self._encrypt(conn, ident_id, inp),
            "merged_into": None,
            "created_at": now,
            "updated_at": now,
        }
        keys = {self.blind.digest(_BLIND_KIND, k) for k in blocking_keys(inp.record())}
        return row, [{"key_hash": k, "identity_id": ident_id} for k in sorted(keys)]

    def _insert(
        self, conn: Connection, inp: IdentityInput, state: str, patient_id: str | None
    ) -> str:
        row, blocks = self.new_rows(conn, inp, state, patient_id)
        conn.execute(insert(identity).values(**row))
        if blocks:
            conn.execute(insert(identity_block), blocks)
        return str(row["id"])

    def _candidates(self, conn: Connection, inp: IdentityInput) -> list[StoredIdentity]:
        hashes = [self.blind.digest(_BLIND_KIND, k) for k in query_keys(inp.record())]
        if not hashes:
            return []
        ids = (
            select(identity_block.c.identity_id)
            .where(identity_block.c.key_hash.in_(hashes))
            .distinct()
            .scalar_subquery()
        )
        rows = conn.execute(
            select(identity).where(identity.c.id.in_(ids), identity.c.state != "merged")
        ).all()
        return self.load(conn, list(rows))

    # -- matching ---------------------------------------------------------------------------------

    def decide_in(self, conn: Connection, inp: IdentityInput) -> MatchResult:
        """The index's decision for ``inp`` on an open connection, writing nothing."""
        if (
            inp.ins is not None
            and inp.status is InsStatus.QUAL
            and self.register is not None
            and not self.register.verify(inp.ins, inp.traits)
        ):
            raise IdentityConflict(
                "the qualified INS does not go with these traits in the reference register"
            )
        model = self.model
        record = inp.record()
        if inp.ins is not None:
            rows = conn.execute(
                select(identity).where(
                    identity.c.ins_hash == ins_digest(self.blind, inp.ins),
                    identity.c.state != "merged",
                )
            ).all()
            known = self.load(conn, list(rows))
            if len(known) > 1:
                # Several identities carry it (a second Patient awaiting the officer): which one
                # is meant is a human's call, whatever the traits; never the first row found.
                return MatchResult(
                    Outcome.REVIEW,
                    "INS known more than once",
                    tuple(
                        Candidate(k.id, k.patient_id, model.score(record, k.record))
                        for k in known[:5]
                    ),
                )
            if known:
                found = known[0]
                score = model.score(record, found.record)
                candidate = Candidate(found.id, found.patient_id, score)
                if not vetoed(score):
                    return MatchResult(
                        Outcome.LINK,
                        "known INS, traits agree",
                        (candidate,),
                        found.id,
                        found.patient_id,
                    )
                return MatchResult(
                    Outcome.REVIEW, "known INS, traits disagree", (candidate,), found.id
                )
        # Weigh every candidate from its comparison vector; build the explained score only for
        # those the decision looks at (the best five and any above the review threshold).
        weighed = sorted(
            (
                (model.weight_of(model.gamma(record, s.record)), i, s)
                for i, s in enumerate(self._candidates(conn, inp))
            ),
            key=lambda t: (-t[0], t[1]),
        )
        kept = [
            s
            for rank, (weight, _, s) in enumerate(weighed)
            if rank < 5 or weight >= self.review_threshold
        ]
        scored = [Candidate(s.id, s.patient_id, model.score(record, s.record)) for s in kept]
        # Pairs a human found distinct matter only when a rival is plausible (saves a query).
        rivals = len(scored) > 1 and scored[1].score.weight >= self.review_threshold
        distinct = dismissed_pairs(conn, [c.identity_id for c in scored]) if rivals else set()
        successor = self.successor()
        return choose(
            scored,
            self.link_threshold,
            self.review_threshold,
            distinct,
            other_people={s.id for s in kept if ins_differ(record, s.record, successor)},
            doubtful={s.id for s in kept if other_first_names_differ(record, s.record)},
        )

    def successor(self) -> Successor:
        """Which NIR replaced an NIA: the reference register's word, or none without one."""
        register = self.register
        return no_successor if register is None else register.successor

    def match(self, inp: IdentityInput) -> MatchResult:
        """Decide without writing anything (the explain endpoint)."""
        with reading(self.engine) as conn:
            return self.decide_in(conn, inp)

    def queue_in(
        self, conn: Connection, inp: IdentityInput, result: MatchResult, patient_id: str | None
    ) -> MatchResult:
        """Keep ``inp`` as a pending identity with a vigilance item (``result`` its evidence)."""
        pending = self._insert(conn, inp, "pending", patient_id)
        best = result.candidates[0] if result.candidates else None
        kind = (
            "unknown"
            if result.outcome is Outcome.NEW
            else ("ins_conflict" if result.reason.startswith("known INS") else "duplicate")
        )
        evidence = {"reason": result.reason, "candidates": [c.as_dict() for c in result.candidates]}
        item_id = new_item(
            conn,
            kind,
            pending,
            None if best is None else best.identity_id,
            None if best is None else best.score.weight,
            evidence,
        )
        return MatchResult(result.outcome, result.reason, result.candidates, pending, None, item_id)

    def resolve(self, inp: IdentityInput, *, ctx: RequestContext) -> MatchResult:
        """Match a Patient's identity and act: link, queue (pending identity) or new identity."""
        with self.fhir.session(ctx, "identity-resolve", "Patient", None) as session:
            unit = session.unit
            return self.resolve_in(unit.conn, inp)

    def resolve_in(self, conn: Connection, inp: IdentityInput) -> MatchResult:
        """:meth:`resolve` inside a caller's transaction (the Patient write hook)."""
        result = self.decide_in(conn, inp)
        if (
            result.outcome is Outcome.LINK
            and inp.patient_id
            and result.patient_id not in (None, inp.patient_id)
        ):
            # The identity already has another Patient: a duplicate Patient, for a human to see.
            duplicate = MatchResult(
                Outcome.REVIEW, "another Patient has this identity", result.candidates
            )
            return self.queue_in(conn, inp, duplicate, inp.patient_id)
        if result.outcome is Outcome.LINK:
            assert result.identity_id is not None
            if inp.ins is not None:
                self.updates.adopt_ins(conn, result.identity_id, inp.ins)
            if inp.patient_id and result.patient_id is None:
                conn.execute(
                    update(identity)
                    .where(identity.c.id == result.identity_id)
                    .values(patient_id=inp.patient_id, updated_at=utc_now())
                )
                return MatchResult(
                    result.outcome,
                    result.reason,
                    result.candidates,
                    result.identity_id,
                    inp.patient_id,
                )
            return result
        if result.outcome is Outcome.NEW:
            new_id = self._insert(conn, inp, "active", inp.patient_id)
            log.info("new identity %s", new_id)
            return MatchResult(
                Outcome.NEW, result.reason, result.candidates, new_id, inp.patient_id
            )
        return self.queue_in(conn, inp, result, inp.patient_id)

    def on_patient_write(self, session: FhirSession, stored: StoredResource) -> None:
        """The FHIR write hook: match a created or updated Patient that has no identity yet.

        A Patient without valid strict traits is stored all the same (FHIR accepts it) but gets no
        identity; one whose qualified INS the register contradicts is refused (409); one carrying
        an INS identifier that breaks the NIR/NIA rules is refused (422), on create and update
        alike, so the interaction (or the whole transaction Bundle) stores nothing.
        """
        unit = session.unit
        if stored.body is None:
            return
        try:
            inses = check_ins_identifiers(stored.body)
        except InvalidIns as exc:
            log.info(
                "Patient %s refused: its INS identifier breaks the NIR/NIA rules", stored.res_id
            )
            raise unprocessable([Issue("value", str(exc), "Patient.identifier")]) from None
        refuse_ins_of_two_people(inses, self.successor(), "Patient.identifier")
        known = unit.conn.execute(
            select(identity).where(identity.c.patient_id == stored.res_id).limit(1)
        ).first()
        if known is not None:
            self.updates.on_update(unit.conn, known, stored)
            return
        try:
            inp = patient_identity(stored.body)
        except InvalidTraits:
            log.info("Patient %s has no valid strict traits; not indexed", stored.res_id)
            return
        try:
            result = self.resolve_in(unit.conn, replace(inp, patient_id=stored.res_id))
        except IdentityConflict as exc:
            raise conflict(str(exc)) from None
        if result.outcome is Outcome.LINK and result.identity_id is not None:
            # Documents deposited for this identity before it had a Patient.
            self.vigilance.release(session, result.identity_id, stored.res_id)

    def count(self) -> int:
        """How many identities the index holds (all states)."""
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(identity)).scalar_one())
