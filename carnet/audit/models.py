"""Audit log tables. Only carnet.audit reads or writes them.

``audit_event`` holds each event's canonical bytes (what the Merkle leaf commits to) and, once the
sequencer has run, its leaf index and leaf hash. ``audit_event_patient`` holds the per-patient part
of an event (a salted slice committed to by digest in the event) and is the patient's lookup index.
``audit_node`` keeps every completed perfect subtree hash (level >= 1) so proofs cost O(log n)
lookups; ``audit_checkpoint`` the signed checkpoints; ``audit_sequencer`` the single row the
sequencer locks.
"""

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from carnet.db.metadata import metadata

# SQLite auto-increments only an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
Seq = BigInteger().with_variant(Integer(), "sqlite")

audit_event = Table(
    "audit_event",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("body", LargeBinary, nullable=False),  # canonical JSON, ids only
    Column("leaf_index", BigInteger, nullable=True),  # set by the sequencer
    Column("leaf_hash", LargeBinary, nullable=True),
    Index("uq_audit_event_event_id", "event_id", unique=True),
    Index("uq_audit_event_leaf_index", "leaf_index", unique=True),
)

audit_event_patient = Table(
    "audit_event_patient",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("slice", LargeBinary, nullable=False),  # canonical JSON: patient, resources, salt
    Index("ix_audit_event_patient_seq", "seq"),
)

audit_node = Table(
    "audit_node",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("created", String(32), nullable=False),
    Column("note", Text, nullable=False),  # the signed note, verbatim
)

audit_sequencer = Table(
    "audit_sequencer",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
)
