"""The research extraction's own tables: the extraction log with the pseudonym map
(``hub_extraction``, ``hub_extraction_person``) and the per-project pseudonym keys
(``project_key``, wrapped by the master key; carnet/crypto/pseudonyms.py).

Why: an extract to OMOP CDM carries per-project pseudonyms only; the way back to a record, the
FHIR-id mapping and the list of patients each project received stay in the record store.

Revision ID: 0019
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_key",
        sa.Column("project_id", sa.String(80), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "hub_extraction",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(80), nullable=False),
        sa.Column("permit_id", sa.String(80), nullable=False),
        sa.Column("engine", sa.String(8), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("output_hash", sa.String(64), nullable=False),
        sa.Column("vocabulary_version", sa.String(200), nullable=False),
        sa.Column("key_generation", sa.Integer, nullable=False),
        sa.Column("row_counts", sa.Text, nullable=False),
        sa.Column("excluded_opted_out", sa.Integer, nullable=False),
        sa.Column("released", sa.Integer, nullable=False),
        sa.Column("source_map", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_hub_extraction_project", "hub_extraction", ["project_id"])
    op.create_table(
        "hub_extraction_person",
        sa.Column("extraction_id", sa.String(36), primary_key=True),
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("person_id", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_hub_extraction_person_patient", "hub_extraction_person", ["patient_id"])


def downgrade() -> None:
    op.drop_table("hub_extraction_person")
    op.drop_table("hub_extraction")
    op.drop_table("project_key")
