"""Tables of the master patient index.

No identifying value is stored in clear: an identity's traits and matricule INS are one AES-GCM blob
under the "identity" data key; what the database can compare are blind (keyed) hashes of the INS and
of the blocking keys. Vigilance items hold ids, comparison levels and weights only; a quarantined
document is encrypted like the traits.
"""

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, String, Table, Text

from carnet.crypto.blind_index import BlindIndexer
from carnet.db.instants import Instant
from carnet.db.metadata import metadata
from carnet.identity.ins import Ins

identity = Table(
    "identity",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("patient_id", String(64), nullable=True),  # the FHIR Patient this identity is
    Column("status", String(8), nullable=False),  # PROV, RECUP, VALI, QUAL
    Column("state", String(12), nullable=False),  # active, pending (in review), merged
    Column("ins_hash", String(32), nullable=True),  # blind hash of the matricule INS
    Column("traits", LargeBinary, nullable=False),  # encrypted JSON traits (+ INS, usage names)
    Column("merged_into", String(36), nullable=True),  # replaced-by, while merged
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    Index("ix_identity_ins_hash", "ins_hash"),
    Index("ix_identity_patient_id", "patient_id"),
)


def ins_digest(blind: BlindIndexer, ins: Ins) -> str:
    """The keyed blind hash of a matricule INS, as ``identity.ins_hash`` holds it."""
    return blind.digest("ins", f"{ins.system}|{ins.value}")


identity_block = Table(
    "identity_block",
    metadata,
    Column("key_hash", String(32), nullable=False),  # blind hash of a blocking key
    Column("identity_id", String(36), nullable=False),
    Index("ix_identity_block_key", "key_hash"),
    Index("ix_identity_block_identity", "identity_id"),
)

vigilance_item = Table(
    "vigilance_item",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(24), nullable=False),  # duplicate, ins_conflict, unknown, held
    Column("state", String(12), nullable=False),  # open, merged, dismissed, unmerged
    Column("identity_id", String(36), nullable=False),  # the incoming (pending) identity
    Column("candidate_id", String(36), nullable=True),  # the identity it may be
    Column("weight", Float, nullable=True),
    Column("evidence", Text, nullable=False),  # JSON: comparison levels and weights, ids only
    Column("created_at", Instant(), nullable=False),
    Column("resolved_at", Instant(), nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Index("ix_vigilance_item_state", "state"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("identity_id", String(36), nullable=False),  # the pending identity it waits for
    Column("res_type", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),  # encrypted FHIR resource
    Column("created_at", Instant(), nullable=False),
    Column("released_to", String(64), nullable=True),  # patient id it was released to
    Column("released_at", Instant(), nullable=True),
    Index("ix_quarantine_identity", "identity_id"),
)

identity_merge = Table(
    "identity_merge",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("source_id", String(36), nullable=False),  # replaced
    Column("target_id", String(36), nullable=False),  # replaced-by
    Column("item_id", String(36), nullable=True),
    Column("actor", String(128), nullable=False),
    Column("merged_at", Instant(), nullable=False),
    Column("undone_at", Instant(), nullable=True),
    # JSON: {"moved": ["Type/id", ...], "released": [[quarantine id, "Type/id"], ...]} (ids only)
    Column("moved", Text, nullable=True),
)

identity_model_params = Table(
    "identity_model_params",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("params", Text, nullable=False),  # JSON m, u, lambda (no identifying value)
    Column("pairs", Integer, nullable=False),  # how many pairs the training saw
    Column("trained_at", Instant(), nullable=False),
)

identity_register = Table(
    "identity_register",
    metadata,
    Column("ins_hash", String(32), primary_key=True),  # blind hash of the matricule
    Column("key_hash", String(32), nullable=False),  # blind hash of name, first name, date, sex
    Column("record", LargeBinary, nullable=False),  # encrypted JSON: matricule and traits
    Index("ix_identity_register_key", "key_hash"),
)
