"""Wrapped data keys: one per owner (a patient compartment, or the shared non-patient owner)."""

from sqlalchemy import Column, Integer, LargeBinary, String, Table

from carnet.db.instants import Instant
from carnet.db.metadata import metadata

data_key = Table(
    "data_key",
    metadata,
    Column("owner", String(80), primary_key=True),
    Column("master_key_id", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=True),  # NULL once destroyed (crypto-shredding)
    Column("created_at", Instant(), nullable=False),
    Column("destroyed_at", Instant(), nullable=True),
)

# Per-project pseudonym keys of the research hub: random, wrapped by the master key; a re-key
# replaces the key and bumps the generation (the old pseudonyms cannot be recomputed).
project_key = Table(
    "project_key",
    metadata,
    Column("project_id", String(80), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("master_key_id", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("rotate_after_days", Integer, nullable=True),  # re-keying period; None: on demand only
)

# Rotations (migration 0021): "wrapping" rewraps every wrapped key to ``target_key_id``; an
# unfinished row is resumed by the next `carnet keys rotate`. "pseudonyms" re-keys the projects due.
key_rotation = Table(
    "key_rotation",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("target_key_id", String(64), nullable=True),
    Column("started_at", Instant(), nullable=False),
    Column("finished_at", Instant(), nullable=True),
    Column("rewrapped", Integer, nullable=False),
)
