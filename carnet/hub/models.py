"""Tables of the research hub: roles, permits, extractions, release requests and their reviews.

Nothing here is health data: a permit holds what the applicant wrote about their project (the
public register shows most of it), a release holds the table request and, once controlled, the
released cells only (the true counts stay in the workspace). People appear as account ids.
Structured fields (team, datasets, tables and variables) are JSON text.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from carnet.db.instants import Instant
from carnet.db.metadata import metadata

hub_role = Table(
    "hub_role",
    metadata,
    Column("subject", String(64), primary_key=True),  # an account or client id
    Column("role", String(24), primary_key=True),  # researcher | reviewer | output_checker
    Column("granted_at", Instant, nullable=False),
)

hub_permit = Table(
    "hub_permit",
    metadata,
    Column("permit_id", String(36), primary_key=True),
    Column("project_id", String(36), nullable=False, unique=True),
    Column("applicant", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("organisation", String(200), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("public_interest", Text, nullable=False),
    Column("legal_basis", String(200), nullable=False),
    Column("team", Text, nullable=False),  # JSON: [account ids]
    Column("datasets", Text, nullable=False),  # JSON: [dataset ids of the catalogue]
    Column("variables", Text, nullable=False),  # JSON: {table: [columns]}
    Column("population", Text, nullable=False),
    Column("period_start", String(10), nullable=False),
    Column("period_end", String(10), nullable=False),
    Column("duration_months", Integer, nullable=False),
    Column("deidentification", String(16), nullable=False),  # pseudonymised | anonymised
    Column("deidentification_reason", Text, nullable=False),
    Column("dates", String(8), nullable=False),  # shift | year | month | exact
    Column("k_threshold", Integer, nullable=False),
    Column("disclosure_profile", String(32), nullable=False),
    Column("conditions", Text, nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("created_at", Instant, nullable=False),
    Column("submitted_at", Instant, nullable=True),
    Column("decided_at", Instant, nullable=True),
    Column("activated_at", Instant, nullable=True),
    Column("expires_at", Instant, nullable=True),
    Column("ended_at", Instant, nullable=True),  # expired or revoked
    Column("results_url", Text, nullable=True),
    Column("results_published_at", Instant, nullable=True),
)
Index("ix_hub_permit_state", hub_permit.c.state)
Index("ix_hub_permit_applicant", hub_permit.c.applicant)

hub_permit_extract = Table(
    "hub_permit_extract",
    metadata,
    Column("extraction_id", String(36), primary_key=True),
    Column("permit_id", String(36), nullable=False),
    Column("extract_path", Text, nullable=False),
    Column("output_hash", String(64), nullable=False),
    Column("engine", String(8), nullable=False),
    Column("row_counts", Text, nullable=False),  # JSON: {table: rows}
    Column("release_blocked", Integer, nullable=False),  # the risk report's verdict
    Column("extracted_at", Instant, nullable=False),
)
Index(
    "ix_hub_permit_extract_permit",
    hub_permit_extract.c.permit_id,
    hub_permit_extract.c.extracted_at,
)

hub_release = Table(
    "hub_release",
    metadata,
    Column("release_id", String(36), primary_key=True),
    Column("permit_id", String(36), nullable=False),
    Column("requester", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # refused_by_gates | pending | released | refused
    Column("request", Text, nullable=False),  # JSON: the table request
    Column("released_table", Text, nullable=True),  # JSON: released cells and totals only
    Column("record", Text, nullable=True),  # JSON: the ACRO results.json entry
    Column("gate_reasons", Text, nullable=True),  # JSON list
    Column("requested_at", Instant, nullable=False),
    Column("released_at", Instant, nullable=True),
)
Index("ix_hub_release_permit", hub_release.c.permit_id)

hub_release_review = Table(
    "hub_release_review",
    metadata,
    Column("release_id", String(36), primary_key=True),
    Column("checker", String(64), primary_key=True),  # one decision per checker and release
    Column("decision", String(8), nullable=False),  # approve | refuse
    Column("comment", Text, nullable=True),
    Column("decided_at", Instant, nullable=False),
)
