"""`carnet audit verify` and `carnet audit witness`.

verify: check every checkpoint's signature, then stream every sequenced event in leaf order,
recompute its leaf hash (the index is part of the leaf, so a moved event does not match), check its
patient slices against the digests it commits to, rebuild the tree and compare its root with every
checkpoint. The first problem is reported with the index of the first bad event; when only a
signed root betrays an edit (leaf hash recomputed), carnet.audit.locate names the event from the
stored nodes.

witness: append the latest checkpoint to a file or directory kept elsewhere, after checking that it
is consistent with the last checkpoint written there (an RFC 9162 consistency proof).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import orjson
from sqlalchemy import select

from carnet.audit import checkpoints, merkle
from carnet.audit.checkpoints import Checkpoint, NoteError
from carnet.audit.locate import locate_edit
from carnet.audit.models import audit_event, audit_event_patient, audit_sequencer
from carnet.audit.service import AuditService
from carnet.db.instants import stamp


@dataclass(frozen=True)
class VerifyReport:
    events: int
    checkpoints: int
    pending: int
    seconds: float
    problem: str | None = None
    first_bad: int | None = None  # leaf index of the first bad event, when one can be named

    @property
    def ok(self) -> bool:
        return self.problem is None


class _BadLogError(Exception):
    def __init__(
        self,
        problem: str,
        first_bad: int | None,
        rebuilt: tuple[Checkpoint, list[bytes]] | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.first_bad = first_bad
        self.rebuilt = rebuilt  # the checkpoint the rebuilt tree missed, and that tree's frontier


def verify(audit: AuditService, progress: Callable[[int], None] | None = None) -> VerifyReport:
    start = time.perf_counter()
    store = audit.store
    counted = {"events": 0, "checkpoints": 0, "pending": 0}
    audit.drain()  # events waiting in the spool are part of the log to check
    try:
        with store.read() as conn:
            counted["pending"] = store.pending(conn)
            sequenced = conn.execute(
                select(audit_sequencer.c.tree_size).where(audit_sequencer.c.id == 1)
            ).scalar_one_or_none()
            cps = _checkpoints(audit, store.checkpoint_rows(conn))
            counted["checkpoints"] = len(cps)
            query = (
                select(
                    audit_event.c.leaf_index,
                    audit_event.c.event_id,
                    audit_event.c.body,
                    audit_event.c.leaf_hash,
                    audit_event_patient.c.patient_id,
                    audit_event_patient.c.slice,
                )
                .select_from(
                    audit_event.outerjoin(
                        audit_event_patient, audit_event_patient.c.seq == audit_event.c.seq
                    )
                )
                .where(audit_event.c.leaf_index.is_not(None))
                .order_by(audit_event.c.leaf_index)
            )
            streaming = conn.execution_options(stream_results=True, yield_per=10_000)
            with streaming.execute(query) as rows:
                counted["events"] = _check_events(rows, cps, progress)
        expected = max([int(sequenced or 0)] + [cp.size for cp in cps])
        if counted["events"] < expected:
            raise _BadLogError(f"event {counted['events']} is missing", counted["events"])
    except _BadLogError as bad:
        if bad.rebuilt is not None:
            bad = _located(audit, bad, *bad.rebuilt)
        return VerifyReport(
            counted["events"],
            counted["checkpoints"],
            counted["pending"],
            time.perf_counter() - start,
            bad.problem,
            bad.first_bad,
        )
    return VerifyReport(
        counted["events"],
        counted["checkpoints"],
        counted["pending"],
        time.perf_counter() - start,
    )


def _located(
    audit: AuditService, bad: _BadLogError, checkpoint: Checkpoint, rebuilt: list[bytes]
) -> _BadLogError:
    """The root mismatch narrowed down with the stored nodes, to the edited event when they
    allow it (see carnet.audit.locate)."""
    with audit.store.read() as conn:
        found = locate_edit(conn, checkpoint, rebuilt)
    if found is None:
        return bad
    if found.exact:
        return _BadLogError(
            f"event {found.first} was edited and its leaf hash recomputed: it differs from the "
            f"tree signed in checkpoint {checkpoint.size}",
            found.first,
        )
    last = found.first + found.count - 1
    return _BadLogError(
        f"events {found.first}..{last} hold an edit (with leaf hashes and stored nodes "
        f"recomputed): they differ from the tree signed in checkpoint {checkpoint.size}",
        found.first,
    )


def _checkpoints(audit: AuditService, rows: list[object]) -> list[Checkpoint]:
    out: list[Checkpoint] = []
    for row in rows:
        size = getattr(row, "tree_size", None)
        try:
            cp = checkpoints.open_note(str(getattr(row, "note", "")), audit.public_key)
        except NoteError as exc:
            raise _BadLogError(f"checkpoint of size {size} is not authentic: {exc}", None) from None
        if cp.size != size or cp.root != getattr(row, "root_hash", None):
            raise _BadLogError(f"checkpoint of size {size} does not match its signed note", None)
        out.append(cp)
    return out


def _check_events(
    rows: object, cps: list[Checkpoint], progress: Callable[[int], None] | None
) -> int:
    """The tight loop: one SHA-256 per leaf, about one per node, no per-row allocation to spare."""
    targets = iter(cps)
    target = next(targets, None)
    while target is not None and target.size == 0:
        if target.root != merkle.EMPTY_ROOT:
            raise _BadLogError("checkpoint 0 does not hold the empty tree's root", 0)
        target = next(targets, None)
    previous_size = 0
    levels: list[int] = []
    hashes: list[bytes] = []
    expected = 0
    current: tuple[int, str, bytes, bytes] | None = None
    slices: list[tuple[str, bytes]] = []

    def close_event() -> None:
        nonlocal expected, target, previous_size
        assert current is not None
        idx, event_id, body, stored = current
        if idx != expected:
            raise _BadLogError(f"event {expected} is missing", expected)
        h = sha256(b"\x00" + idx.to_bytes(8, "big") + body).digest()
        if h != stored:
            raise _BadLogError(f"event {idx} does not match its leaf hash (edited or moved)", idx)
        event = orjson.loads(body)
        digests = sorted(sha256(s).hexdigest() for _, s in slices)
        if event.get("id") != event_id or event.get("subjects") != digests:
            raise _BadLogError(f"event {idx}: its id or patient slices were altered", idx)
        for pid, s in slices:
            if orjson.loads(s).get("patient") != pid:
                raise _BadLogError(
                    f"event {idx}: a patient slice was moved to another patient", idx
                )
        lvl = 0
        while levels and levels[-1] == lvl:
            levels.pop()
            h = sha256(b"\x01" + hashes.pop() + h).digest()
            lvl += 1
        levels.append(lvl)
        hashes.append(h)
        expected += 1
        if progress is not None and expected % 100_000 == 0:
            progress(expected)
        while target is not None and target.size == expected:
            if _root(hashes) != target.root:
                raise _BadLogError(
                    f"events {previous_size}..{expected - 1} do not match signed checkpoint "
                    f"{expected} (rewritten with their leaf hashes)",
                    previous_size,
                    (target, list(hashes)),
                )
            previous_size = expected
            target = next(targets, None)

    for idx, event_id, body, stored, pid, data in rows:  # type: ignore[attr-defined]
        if current is not None and idx == current[0]:
            slices.append((pid, data))
            continue
        if current is not None:
            close_event()
        current = (idx, event_id, body, stored)
        slices = [(pid, data)] if pid is not None else []
    if current is not None:
        close_event()
    if target is not None:
        raise _BadLogError(f"event {expected} is missing", expected)
    return expected


def _root(hashes: list[bytes]) -> bytes:
    return merkle.fold(hashes) if hashes else merkle.EMPTY_ROOT


# -- witness ------------------------------------------------------------------------------------


class WitnessError(RuntimeError):
    """The witness's last checkpoint and the log disagree: the log was rewritten or rolled back."""


@dataclass(frozen=True)
class WitnessResult:
    checkpoint: Checkpoint
    previous: Checkpoint | None
    written: bool


def _last_witnessed(path: Path) -> str | None:
    if path.is_dir():
        files = sorted(path.glob("*.checkpoint"))
        return files[-1].read_text(encoding="utf-8") if files else None
    if not path.exists():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        return None
    return str(orjson.loads(lines[-1])["note"])


def witness(audit: AuditService, path: Path) -> WitnessResult:
    """Check the latest checkpoint against the witness's last one, then append it there."""
    latest = audit.current()
    if latest is None:
        raise WitnessError("the audit log has no checkpoint yet")
    previous_note = _last_witnessed(path)
    previous = None
    proof: list[bytes] = []
    if previous_note is not None:
        try:
            previous = checkpoints.open_note(previous_note, audit.public_key)
        except NoteError as exc:
            raise WitnessError(f"the witness's last checkpoint is not this log's: {exc}") from None
        if previous.size > latest.size:
            raise WitnessError(
                f"the log shrank: witness saw {previous.size} events, the log has {latest.size}"
            )
        proof = audit.consistency_proof(previous.size, latest.size)
        if not merkle.verify_consistency(
            previous.size, latest.size, previous.root, latest.root, proof
        ):
            raise WitnessError(
                f"INCONSISTENT: checkpoint {latest.size} does not extend the witnessed "
                f"checkpoint {previous.size}; the log was rewritten"
            )
        if previous.size == latest.size:
            return WitnessResult(latest, previous, written=False)
    if path.is_dir():
        (path / f"{latest.size:020d}.checkpoint").write_text(latest.note, encoding="utf-8")
    else:
        record = {
            "note": latest.note,
            "witnessed": stamp(),
            "consistency_from": previous.size if previous else 0,
            "consistency": [p.hex() for p in proof],
        }
        with path.open("ab") as handle:
            handle.write(orjson.dumps(record) + b"\n")
    return WitnessResult(latest, previous, written=True)
