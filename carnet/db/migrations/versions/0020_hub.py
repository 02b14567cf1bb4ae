"""The research hub: roles, permits, extractions, release requests and their reviews.

Revision ID: 0020
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_role",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(24), primary_key=True),
        sa.Column("granted_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "hub_permit",
        sa.Column("permit_id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), nullable=False, unique=True),
        sa.Column("applicant", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("public_interest", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.String(200), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("datasets", sa.Text(), nullable=False),
        sa.Column("variables", sa.Text(), nullable=False),
        sa.Column("population", sa.Text(), nullable=False),
        sa.Column("period_start", sa.String(10), nullable=False),
        sa.Column("period_end", sa.String(10), nullable=False),
        sa.Column("duration_months", sa.Integer(), nullable=False),
        sa.Column("deidentification", sa.String(16), nullable=False),
        sa.Column("deidentification_reason", sa.Text(), nullable=False),
        sa.Column("dates", sa.String(8), nullable=False),
        sa.Column("k_threshold", sa.Integer(), nullable=False),
        sa.Column("disclosure_profile", sa.String(32), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("submitted_at", sa.String(32), nullable=True),
        sa.Column("decided_at", sa.String(32), nullable=True),
        sa.Column("activated_at", sa.String(32), nullable=True),
        sa.Column("expires_at", sa.String(32), nullable=True),
        sa.Column("ended_at", sa.String(32), nullable=True),
        sa.Column("results_url", sa.Text(), nullable=True),
        sa.Column("results_published_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_hub_permit_applicant", "hub_permit", ["applicant"])
    op.create_index("ix_hub_permit_state", "hub_permit", ["state"])
    op.create_table(
        "hub_permit_extract",
        sa.Column("extraction_id", sa.String(36), primary_key=True),
        sa.Column("permit_id", sa.String(36), nullable=False),
        sa.Column("extract_path", sa.Text(), nullable=False),
        sa.Column("output_hash", sa.String(64), nullable=False),
        sa.Column("engine", sa.String(8), nullable=False),
        sa.Column("row_counts", sa.Text(), nullable=False),
        sa.Column("release_blocked", sa.Integer(), nullable=False),
        sa.Column("extracted_at", sa.String(32), nullable=False),
    )
    op.create_index(
        "ix_hub_permit_extract_permit", "hub_permit_extract", ["permit_id", "extracted_at"]
    )
    op.create_table(
        "hub_release",
        sa.Column("release_id", sa.String(36), primary_key=True),
        sa.Column("permit_id", sa.String(36), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("released_table", sa.Text(), nullable=True),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("gate_reasons", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.String(32), nullable=False),
        sa.Column("released_at", sa.String(32), nullable=True),
    )
    op.create_index("ix_hub_release_permit", "hub_release", ["permit_id"])
    op.create_table(
        "hub_release_review",
        sa.Column("release_id", sa.String(36), primary_key=True),
        sa.Column("checker", sa.String(64), primary_key=True),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hub_release_review")
    op.drop_table("hub_release")
    op.drop_table("hub_permit_extract")
    op.drop_table("hub_permit")
    op.drop_table("hub_role")
