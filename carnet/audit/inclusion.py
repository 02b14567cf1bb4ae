"""Checking one event of a patient's history against the signed checkpoint, as a client would.

The same three checks as the independent verifier of docs/audit.md, on one event: the checkpoint's
signature by the log's key, the patient's slice against the digests the event commits to, and the
event's inclusion proof against the signed root. An event still in the spool (or sequenced after
the checkpoint shown) has no proof yet: it is *pending*, not failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256

import orjson

from carnet.audit import merkle, render
from carnet.audit.checkpoints import Checkpoint, NoteError, open_note
from carnet.audit.events import leaf_data
from carnet.audit.service import LoggedEvent


class Inclusion(StrEnum):
    VERIFIED = "verified"  # signed checkpoint, slice and proof all hold
    PENDING = "pending"  # not yet sealed in a checkpoint (spooled or after the latest one)
    FAILED = "failed"  # something does not hold: ``problem`` says what


@dataclass(frozen=True)
class InclusionCheck:
    """The result of checking one event; ``problem`` is a code (signature, slice, proof)."""

    result: Inclusion
    tree_size: int | None = None
    checkpoint_time: str | None = None
    problem: str | None = None


def check_inclusion(
    logged: LoggedEvent, checkpoint: Checkpoint | None, public_key: bytes, patient_id: str
) -> InclusionCheck:
    """Check ``logged`` (with its inclusion proof) for ``patient_id`` against ``checkpoint``."""
    if logged.leaf_index is None or logged.proof is None or checkpoint is None:
        return InclusionCheck(Inclusion.PENDING)
    try:
        signed = open_note(checkpoint.note, public_key)
    except NoteError:
        return InclusionCheck(Inclusion.FAILED, problem="signature")
    size, at = signed.size, signed.time
    subjects = orjson.loads(logged.body).get("subjects") or []
    mine = [s for s in logged.slices if orjson.loads(s).get("patient") == patient_id]
    if not mine or any(sha256(s).hexdigest() not in subjects for s in mine):
        return InclusionCheck(Inclusion.FAILED, size, at, "slice")
    leaf = merkle.leaf_hash(leaf_data(logged.leaf_index, logged.body))
    if not merkle.verify_inclusion(leaf, logged.leaf_index, size, logged.proof, signed.root):
        return InclusionCheck(Inclusion.FAILED, size, at, "proof")
    return InclusionCheck(Inclusion.VERIFIED, size, at)


def proof_file(
    logged: LoggedEvent,
    checkpoint: Checkpoint | None,
    public_key: bytes,
    patient_id: str,
    hidden: frozenset[str] = frozenset(),
) -> bytes:
    """One event in the export format of docs/audit.md (a checkpoint line, then the event),
    which the independent verifier there accepts as it is."""
    mine = [s for s in logged.slices if orjson.loads(s).get("patient") == patient_id]
    only_mine = LoggedEvent(logged.event_id, logged.body, mine, logged.leaf_index, logged.proof)
    header = render.export_header(checkpoint, public_key, patient_id)
    return header + b"\n" + render.export_line(only_mine, hidden) + b"\n"
