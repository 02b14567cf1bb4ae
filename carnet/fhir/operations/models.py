"""Tables of the bulk operations: job state (so a status survives a restart) and import progress.

Neither holds clinical content: a job row keeps its parameters (types, dates, patient ids) and its
manifest; an import-progress row keeps a file fingerprint and how many lines were committed.
"""

from sqlalchemy import Boolean, Column, Integer, String, Table, Text

from carnet.db.instants import Instant
from carnet.db.metadata import metadata

bulk_job = Table(
    "bulk_job",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # export or import
    Column("status", String(16), nullable=False),  # accepted, running, completed, failed, cancelled
    Column("request", String(2048), nullable=False),  # the kick-off URL, echoed in the manifest
    Column("actor", String(128), nullable=False),
    Column("params", Text, nullable=False),  # JSON: what to do
    Column("transaction_time", String(32), nullable=True),  # FHIR instant the data is as of
    Column("progress", String(255), nullable=True),
    Column("result", Text, nullable=True),  # JSON: output and error lists once completed
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
)

import_progress = Table(
    "import_progress",
    metadata,
    Column("source_key", String(64), primary_key=True),  # SHA-256 of path, size and first bytes
    Column("name", String(255), nullable=False),  # file name, for operators
    Column("lines_done", Integer, nullable=False),  # lines consumed by committed transactions
    Column("complete", Boolean, nullable=False),
    Column("updated_at", Instant(), nullable=False),
)
