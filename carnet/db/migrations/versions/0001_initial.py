"""Initial schema: wrapped data keys, versioned encrypted resources, search-index tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_INDEX_TABLES: dict[str, list[sa.Column[object]]] = {
    "idx_string": [sa.Column("value", sa.String(32))],
    "idx_token": [sa.Column("system", sa.String(255)), sa.Column("code", sa.String(255))],
    "idx_reference": [
        sa.Column("target_type", sa.String(64)),
        sa.Column("target_id", sa.String(255), nullable=False),
    ],
    "idx_date": [
        sa.Column("low", sa.String(32), nullable=False),
        sa.Column("high", sa.String(32), nullable=False),
    ],
    "idx_quantity": [
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("system", sa.String(255)),
        sa.Column("code", sa.String(255)),
    ],
    "idx_number": [sa.Column("value", sa.Float, nullable=False)],
    "idx_uri": [sa.Column("value", sa.String(512), nullable=False)],
}
_VALUE_INDEX = {
    "idx_string": ["value"],
    "idx_token": ["code"],
    "idx_reference": ["target_id"],
    "idx_date": ["low", "high"],
    "idx_quantity": ["value"],
    "idx_number": ["value"],
    "idx_uri": ["value"],
}


def upgrade() -> None:
    op.create_table(
        "data_key",
        sa.Column("owner", sa.String(80), primary_key=True),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "fhir_resource",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.String(32), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=True),
    )
    op.create_index(
        "uq_fhir_resource_version", "fhir_resource", ["res_type", "res_id", "version"], unique=True
    )
    op.create_index(
        "ix_fhir_resource_current", "fhir_resource", ["res_type", "current", "last_updated"]
    )
    op.create_index("ix_fhir_resource_patient", "fhir_resource", ["patient_id"])
    for name, columns in _INDEX_TABLES.items():
        op.create_table(
            name,
            sa.Column("res_type", sa.String(64), nullable=False),
            sa.Column("res_id", sa.String(64), nullable=False),
            sa.Column("param", sa.String(64), nullable=False),
            *columns,
        )
        op.create_index(f"ix_{name}_owner", name, ["res_type", "res_id"])
        op.create_index(f"ix_{name}_value", name, ["res_type", "param", *_VALUE_INDEX[name]])


def downgrade() -> None:
    for name in _INDEX_TABLES:
        op.drop_table(name)
    op.drop_table("fhir_resource")
    op.drop_table("data_key")
