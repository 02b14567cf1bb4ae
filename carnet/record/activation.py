"""One-time codes that reach the person through the notification outbox: the activation of a
space created automatically (then the person chooses a password and enrols a second factor, or
objects), and a forgotten password.

A code is 16 characters from an unambiguous alphabet (80 bits), valid ``CODE_DAYS`` days (a
reset: ``RESET_HOURS``), usable once; issuing a new one for the same purpose voids the previous
one. Only its SHA-256 digest is stored here; the clear code sits in the outbox row until the
channel delivers it (carnet/record/outbox.py). Issuing runs in a FHIR session of the caller
(``record-notify`` on the person's Patient), so it is decided and audited like any notification.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, delete, insert, select, update

from carnet.caller import RequestContext
from carnet.db.engine import reading, writing
from carnet.db.instants import stamp, utc_now
from carnet.fhir.service import FhirService
from carnet.record import notifications as templates
from carnet.record.models import CLOSED, REFUSED, SHREDDED, record_activation, record_space
from carnet.record.outbox import queue

ACTIVATION, PASSWORD_RESET = "activation", "password-reset"
CODE_DAYS = 90
RESET_HOURS = 1
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read from a letter
_LENGTH = 16
T = TypeVar("T")
_KINDS = {ACTIVATION: templates.ACTIVATION_CODE, PASSWORD_RESET: templates.PASSWORD_RESET}


def normalise(code: str) -> str:
    """The code as typed, without spaces or dashes, upper case."""
    return "".join(c for c in code.upper() if c.isalnum())[:64]


def _digest(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def formatted(code: str) -> str:
    """ABCD-EFGH-JKLM-NPQR: how a letter prints it."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def _live(code: str, purpose: str, now: datetime | None, at: str | None = None) -> Any:
    """A code that can still be used: its digest, purpose, not used, not expired; and for an
    activation, a space not ended (pending, open, or a Patient without a space row, as
    ``RecordService`` treats one). A space refused, closed (a death, a request) or
    shredded is no more to be activated: the letter sent before (opened by whoever receives
    the mail) gives no way into its record."""
    a = record_activation.c
    live = and_(
        a.code_hash == _digest(code),
        a.purpose == purpose,
        a.used_at.is_(None),
        a.expires_at > (at or stamp(now or utc_now())),
    )
    if purpose != ACTIVATION:
        return live
    s = record_space.c
    ended = select(s.patient_id).where(
        s.patient_id == a.patient_id, s.state.in_((REFUSED, CLOSED, SHREDDED))
    )
    return and_(live, ~ended.exists())


@dataclass(frozen=True)
class Redeemed:
    patient_id: str
    purpose: str


class ActivationCodes:
    """Issues, checks and uses up the one-time codes of a person's space."""

    def __init__(self, fhir: FhirService, engine: Engine) -> None:
        self.fhir = fhir
        self.engine = engine  # the codes' own table, in transactions of their own

    def issue(
        self,
        patient_id: str,
        *,
        ctx: RequestContext,
        purpose: str = ACTIVATION,
        now: datetime | None = None,
    ) -> str:
        """A new code for ``patient_id`` queued in the outbox for the person; returns it."""
        moment = now or utc_now()
        life = timedelta(days=CODE_DAYS) if purpose == ACTIVATION else timedelta(hours=RESET_HOURS)
        code = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
        with self.fhir.session(ctx, "record-notify", "Patient", patient_id) as session:
            session.check("record-notify", "Patient", patient_id)
            conn = session.unit.conn
            conn.execute(
                delete(record_activation).where(
                    record_activation.c.patient_id == patient_id,
                    record_activation.c.purpose == purpose,
                    record_activation.c.used_at.is_(None),
                )
            )
            conn.execute(
                insert(record_activation).values(
                    code_hash=_digest(code),
                    patient_id=patient_id,
                    purpose=purpose,
                    created_at=stamp(moment),
                    expires_at=stamp(moment + life),
                )
            )
            queue(conn, patient_id, patient_id, _KINDS[purpose], moment, secret=formatted(code))
        return formatted(code)

    def check(self, code: str, purpose: str, *, now: datetime | None = None) -> Redeemed | None:
        """Whose space a live code opens (None for a wrong, used or expired code)."""
        if len(normalise(code)) != _LENGTH:
            return None
        a = record_activation.c
        with reading(self.engine) as conn:
            row = conn.execute(
                select(a.patient_id, a.purpose).where(_live(code, purpose, now))
            ).first()
        return None if row is None else Redeemed(row.patient_id, row.purpose)

    def spend(
        self,
        code: str,
        purpose: str,
        grant: Callable[[Connection, Redeemed], T],
        *,
        now: datetime | None = None,
    ) -> T | None:
        """Claim the code and do what it grants, in one transaction: ``grant(conn, redeemed)``
        runs on the claim's connection only once the code is ours, and commits with it; if it
        raises, the claim rolls back with it and the code stays usable. None for a wrong, used or
        expired code. The claim is a conditional UPDATE (not yet used) checked by its rowcount:
        of two submissions of one code, even at once, only one gets past it (SQLite: the write
        lock taken at BEGIN; PostgreSQL: the row lock, the other's WHERE seeing it used), so a
        code never makes two accounts nor sets two passwords. Checking first and using up
        afterwards, in separate transactions, let both through."""
        if len(normalise(code)) != _LENGTH:
            return None
        with writing(self.engine) as conn:
            redeemed = self.claim_in(conn, code, purpose, now=now)
            return None if redeemed is None else grant(conn, redeemed)

    def claim_in(
        self,
        conn: Connection,
        code: str,
        purpose: str,
        *,
        patient_id: str | None = None,
        now: datetime | None = None,
    ) -> Redeemed | None:
        """Claim the code in the caller's transaction (``spend``'s claim, for a grant that runs
        in a transaction of its own making: the objection's FHIR session). It is spent only if
        that transaction commits. None for a wrong, used or expired code, or (``patient_id``
        given) another space's."""
        if len(normalise(code)) != _LENGTH:
            return None
        at = stamp(now or utc_now())
        a = record_activation.c
        live = _live(code, purpose, now, at)
        if patient_id is not None:
            live = and_(live, a.patient_id == patient_id)
        row = conn.execute(select(a.patient_id, a.purpose).where(live)).first()
        if row is None:
            return None
        if conn.execute(update(record_activation).where(live).values(used_at=at)).rowcount != 1:
            return None  # another submission claimed it first
        return Redeemed(row.patient_id, row.purpose)
