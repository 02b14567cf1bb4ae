"""Resource rows (versioned, encrypted bodies) and the search-parameter index tables.

Only carnet.fhir.repository reads or writes these tables; carnet.fhir.snapshots, the two
snapshot tables (ids and bindings, no content).
"""

from sqlalchemy import Boolean, Column, Float, Index, Integer, LargeBinary, String, Table, text

from carnet.db.metadata import metadata

resource = Table(
    "fhir_resource",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(32), nullable=False),  # fixed-width UTC ISO, sorts as text
    Column("patient_id", String(64), nullable=True),  # patient compartment, also the key owner
    Column("method", String(8), nullable=False),  # POST, PUT or DELETE, for history bundles
    Column("deleted", Boolean, nullable=False, default=False),
    Column("current", Boolean, nullable=False, default=True),
    Column("body", LargeBinary, nullable=True),  # AES-GCM ciphertext; NULL for a deletion
    Index("uq_fhir_resource_version", "res_type", "res_id", "version", unique=True),
    # Current versions by update time (listing a type). Not (res_type, current, ...): SQLite
    # preferred that to the unique index below for ``res_id IN (...)`` reads (migration 0011).
    Index(
        "ix_fhir_resource_current",
        "res_type",
        "last_updated",
        sqlite_where=text("current = 1"),
        postgresql_where=text("current"),
    ),
    Index("ix_fhir_resource_patient", "patient_id"),
    # At most one current version per resource; and, being unique on equality-matched columns,
    # the index planners pick for reads by id, one or many, whether or not they have statistics.
    Index(
        "uq_fhir_resource_current",
        "res_type",
        "res_id",
        unique=True,
        sqlite_where=text("current = 1"),
        postgresql_where=text("current"),
    ),
)


def _index_table(
    name: str,
    *value_columns: Column[object],
    value_index: tuple[str, ...],
    owner_index: tuple[str, ...] = (),
) -> Table:
    return Table(
        name,
        metadata,
        Column("res_type", String(64), nullable=False),
        Column("res_id", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *value_columns,
        Index(f"ix_{name}_owner", "res_type", "res_id", *owner_index),
        Index(f"ix_{name}_value", "res_type", "param", *value_index),
    )


# Strings are blind-indexed: `value` holds a keyed hash, never text.
idx_string = _index_table("idx_string", Column("value", String(32)), value_index=("value",))
# Tokens: codes in clear; identifying tokens (identifier, telecom) hold a keyed hash in `code`.
idx_token = _index_table(
    "idx_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    # Covering (migration 0010): a code's lookup, its per-row check and its count need no table row.
    value_index=("code", "system", "res_id"),
)
idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(255), nullable=False),
    value_index=("target_id", "target_type", "res_id"),  # covering (0010)
)
idx_date = _index_table(
    "idx_date",
    Column("low", String(32), nullable=False),
    Column("high", String(32), nullable=False),
    value_index=("low", "high"),
    owner_index=("param", "low", "high"),  # covering for a date checked per driven row (0010)
)
idx_quantity = _index_table(
    "idx_quantity",
    Column("value", Float, nullable=False),
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    value_index=("value",),
)
idx_number = _index_table(
    "idx_number", Column("value", Float, nullable=False), value_index=("value",)
)
idx_uri = _index_table(
    "idx_uri", Column("value", String(512), nullable=False), value_index=("value",)
)

# The text of codes, once per distinct (system, code, text prefix): token ``:text`` searches join it
# to idx_token instead of storing a display's prefixes on every resource that uses the code.
code_text = Table(
    "code_text",
    metadata,
    Column("system", String(255), nullable=False),  # "" when the coding has none
    Column("code", String(255), nullable=False),
    Column("value", String(32), nullable=False),  # blind prefix hash of the text or display
    Index("uq_code_text", "system", "code", "value", unique=True),
    Index("ix_code_text_value", "value"),
)

# Result snapshots of searches with more than one page, so that paging neither skips nor repeats
# resources when data changes between pages.
search_snapshot = Table(
    "search_snapshot",
    metadata,
    Column("snapshot_id", String(36), nullable=False),
    Column("position", Integer, nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("uq_search_snapshot", "snapshot_id", "position", unique=True),
    Index("ix_search_snapshot_created", "created_at"),
)

INDEX_TABLES = {
    "string": idx_string,
    "token": idx_token,
    "reference": idx_reference,
    "date": idx_date,
    "quantity": idx_quantity,
    "number": idx_number,
    "uri": idx_uri,
}

# Who may read a snapshot: a keyed digest of the caller, the type and the query that made it
# (carnet/fhir/snapshots.py), how many ids it holds, and when it was made (it lives one hour).
search_snapshot_binding = Table(
    "search_snapshot_binding",
    metadata,
    Column("snapshot_id", String(36), primary_key=True),
    Column("binding", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_search_snapshot_binding_created", "created_at"),
)
