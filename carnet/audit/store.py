"""The audit tables: append events, sequence them into the Merkle tree, read nodes and checkpoints.

Appends happen inside the caller's transaction (the FHIR unit of work, so a write and its event
commit together). Sequencing is a separate step, as in Trillian: under the sequencer lock (the
single ``audit_sequencer`` row, ``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
IMMEDIATE`` already serialises writers) committed events without a leaf index get consecutive
indexes in ``seq`` order, their leaf hashes, and every perfect subtree they complete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection, Engine, func, select, tuple_, update

from carnet.audit import merkle
from carnet.audit.events import Event, leaf_data
from carnet.audit.models import (
    audit_checkpoint,
    audit_event,
    audit_event_patient,
    audit_node,
    audit_sequencer,
)
from carnet.db.bulk import execute_many, insert_rows
from carnet.db.engine import WRITE_OPTION, without_waiting, writing

# The execution option carnet.fhir.repository's SQLite listener reads to BEGIN IMMEDIATE.
SEQUENCE_CHUNK = 20_000
_IN_CHUNK = 500
_SET_LEAF = f"UPDATE {audit_event.name} SET leaf_index = ?, leaf_hash = ? WHERE seq = ?"


class AuditStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[Connection]:
        """A writing transaction of its own (failure events, sequencing, the audit's own reads).
        ``wait`` False (SQLite): fail at once, as a lock timeout, if a writer holds the lock."""
        if wait:
            with writing(self.engine) as conn:
                yield conn
            return
        with self.engine.connect() as raw, without_waiting(raw):
            conn = raw.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- appends --------------------------------------------------------------------------------

    def append(self, conn: Connection, events: Sequence[Event]) -> None:
        """Insert events (and their patient slices) in the caller's transaction, through the
        driver (a transaction Bundle appends one event per entry, hundreds at a time)."""
        if not events:
            return
        seqs = self._allocate(conn, len(events))
        insert_rows(
            conn,
            audit_event,
            ("seq", "event_id", "body"),
            [(seq, e.event_id, e.body) for seq, e in zip(seqs, events, strict=True)],
        )
        slices = [
            (pid, seq, data)
            for seq, e in zip(seqs, events, strict=True)
            for pid, data in e.slices.items()
        ]
        insert_rows(conn, audit_event_patient, ("patient_id", "seq", "slice"), slices)

    def known_ids(self, conn: Connection, event_ids: Sequence[str]) -> set[str]:
        """Which of these event ids the log already holds."""
        known: set[str] = set()
        for start in range(0, len(event_ids), _IN_CHUNK):
            chunk = event_ids[start : start + _IN_CHUNK]
            known.update(
                conn.execute(
                    select(audit_event.c.event_id).where(audit_event.c.event_id.in_(chunk))
                ).scalars()
            )
        return known

    @staticmethod
    def _allocate(conn: Connection, count: int) -> list[int]:
        """``count`` new event seqs, in order, as the database would have given them."""
        if conn.dialect.name == "postgresql":
            # The column's own sequence: concurrent writers never share a value.
            found = conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('audit_event', 'seq')) "
                "FROM generate_series(1, %s)",
                (count,),
            )
            return sorted(int(row[0]) for row in found)
        # SQLite gives max(rowid) + 1; the writer holds the database's write lock until it
        # commits (a deferred transaction that wrote nothing yet cannot write on a stale
        # snapshot), so no other writer can take these.
        last = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM audit_event").scalar_one()
        return list(range(int(last) + 1, int(last) + 1 + count))

    # -- sequencing -------------------------------------------------------------------------------

    def lock(self, conn: Connection) -> int:
        """Take the sequencer lock; returns the sequenced tree size."""
        query = select(audit_sequencer.c.tree_size).where(audit_sequencer.c.id == 1)
        size = conn.execute(query.with_for_update()).scalar_one_or_none()
        if size is None:
            conn.execute(audit_sequencer.insert().values(id=1, tree_size=0))
            size = conn.execute(query.with_for_update()).scalar_one()
        return int(size)

    def frontier(self, conn: Connection, size: int) -> merkle.Frontier:
        nodes = merkle.Frontier.nodes_for(size)
        found = self.nodes(conn, set(nodes))
        return merkle.Frontier(size, [found[n] for n in nodes])

    def sequence(self, conn: Connection, size: int, frontier: merkle.Frontier) -> int:
        """Give leaf indexes to unsequenced events in ``seq`` order; returns the new tree size."""
        assert frontier.size == size
        while True:
            rows = conn.execute(
                select(audit_event.c.seq, audit_event.c.body)
                .where(audit_event.c.leaf_index.is_(None))
                .order_by(audit_event.c.seq)
                .limit(SEQUENCE_CHUNK)
            ).all()
            if not rows:
                break
            leaves: list[tuple[int, bytes, int]] = []
            nodes: list[tuple[int, int, bytes]] = []
            for seq, body in rows:
                h = sha256(b"\x00" + leaf_data(size, body)).digest()
                leaves.append((size, h, seq))
                # The leaf too, apart from the event's own copy: verify names an event edited
                # with its leaf hash recomputed by walking these nodes down from a signed root.
                nodes.append((0, size, h))
                nodes.extend(frontier.append(h))
                size += 1
            # Through the driver: SQLAlchemy's per-row parameter handling cost more than the
            # updates themselves.
            execute_many(conn, _SET_LEAF, leaves)
            insert_rows(conn, audit_node, ("level", "idx", "hash"), nodes)
            if len(rows) < SEQUENCE_CHUNK:
                break
        conn.execute(
            update(audit_sequencer).where(audit_sequencer.c.id == 1).values(tree_size=size)
        )
        return size

    # -- reads ------------------------------------------------------------------------------------

    def nodes(self, conn: Connection, keys: set[merkle.Node]) -> dict[merkle.Node, bytes]:
        """Perfect subtree hashes by (level, index); level 0 is the events' leaf hashes."""
        out: dict[merkle.Node, bytes] = {}
        leaves = sorted(i for lvl, i in keys if lvl == 0)
        inner = sorted((lvl, i) for lvl, i in keys if lvl > 0)
        for start in range(0, len(leaves), _IN_CHUNK):
            chunk = leaves[start : start + _IN_CHUNK]
            for idx, h in conn.execute(
                select(audit_event.c.leaf_index, audit_event.c.leaf_hash).where(
                    audit_event.c.leaf_index.in_(chunk)
                )
            ):
                out[(0, idx)] = h
        for start in range(0, len(inner), _IN_CHUNK):
            chunk2 = inner[start : start + _IN_CHUNK]
            for lvl, idx, h in conn.execute(
                select(audit_node.c.level, audit_node.c.idx, audit_node.c.hash).where(
                    tuple_(audit_node.c.level, audit_node.c.idx).in_(chunk2)
                )
            ):
                out[(lvl, idx)] = h
        missing = keys - out.keys()
        if missing:
            raise LookupError(f"{len(missing)} Merkle nodes are missing, e.g. {min(missing)}")
        return out

    def proofs(
        self, conn: Connection, ranges: Mapping[Any, list[merkle.Range]]
    ) -> dict[Any, list[bytes]]:
        """Resolve several proofs (given as leaf ranges) with one round of node lookups."""
        needed: set[merkle.Node] = set()
        for r in ranges.values():
            needed |= merkle.needed_nodes(r)
        found = self.nodes(conn, needed)
        return {key: merkle.resolve(r, found) for key, r in ranges.items()}

    def latest_checkpoint_row(self, conn: Connection) -> Any:
        return conn.execute(
            select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size.desc()).limit(1)
        ).first()

    def checkpoint_rows(self, conn: Connection) -> list[Any]:
        return list(conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size)))

    def pending(self, conn: Connection) -> int:
        return int(
            conn.execute(
                select(func.count())
                .select_from(audit_event)
                .where(audit_event.c.leaf_index.is_(None))
            ).scalar_one()
        )
