"""Tables of the policy decision point: rules, care relationships, blocks, visibility flags,
authors, preferences, break-glass and alerts.

Times are UTC ISO strings, which sort as text. Table names keep their ``access_`` prefix from
before the split of carnet/access (no migration for a move).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, String, Table, Text

from carnet.db.metadata import metadata

access_rule = Table(
    "access_rule",
    metadata,
    Column("rule_id", String(64), primary_key=True),
    Column(
        "actor", String(16), nullable=False
    ),  # person | representative | professional | app | operator
    Column("profession", String(32), nullable=False, default="*"),
    Column("res_type", Text, nullable=False, default="*"),  # "*" or a list
    Column("action", String(16), nullable=False),  # read | write
    Column("relationship", String(24), nullable=False),  # see carnet.policy.service
    Column("effect", String(8), nullable=False),  # allow | deny
    Column("description", String(255), nullable=False),
)

access_care = Table(
    "access_care",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("rpps", String(32), primary_key=True),
    Column("source", String(16), nullable=False),  # declared | deposit | encounter
    Column("medecin_traitant", Boolean, nullable=False, default=False),
    Column("created_at", String(32), nullable=False),
)
Index("ix_access_care_rpps", access_care.c.rpps)

access_block = Table(
    "access_block",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("rpps", String(32), primary_key=True),
    Column("created_at", String(32), nullable=False),
)

access_visibility = Table(
    "access_visibility",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("flag", String(40), primary_key=True),  # MASQUE_PS | INVISIBLE_PATIENT | ...
    Column("patient_id", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
)
Index("ix_access_visibility_patient", access_visibility.c.patient_id)

access_author = Table(
    "access_author",
    metadata,
    # Who wrote an item's first version, taken from the authenticated caller (never the body):
    # the author of a deposit reads it back, and a patient cannot rewrite a professional's item.
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column(
        "author_kind", String(16), nullable=False
    ),  # professional | person | app | backend | operator
    Column("author", String(64), nullable=False),  # RPPS, account id or client id: ids only
    Column("created_at", String(32), nullable=False),
)
Index("ix_access_author_author", access_author.c.author_kind, access_author.c.author)

access_preference = Table(
    "access_preference",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("emergency_opposition", Boolean, nullable=False, default=False),
    Column("research_optout", Boolean, nullable=False, default=False),
    Column("updated_at", String(32), nullable=False),
)

access_break_glass = Table(
    "access_break_glass",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("rpps", String(32), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("reason", String(32), nullable=False),  # a code from BREAK_GLASS_REASONS
    Column("granted_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
)
Index("ix_access_break_glass_lookup", access_break_glass.c.rpps, access_break_glass.c.patient_id)

access_alert = Table(
    "access_alert",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),  # break-glass | lockout | ...
    Column("patient_id", String(64), nullable=True),
    Column("subject", String(64), nullable=False),  # who raised it (rpps, account id): ids only
    Column("created_at", String(32), nullable=False),
    Column("acknowledged", Boolean, nullable=False, default=False),
)

access_research_optout = Table(
    "access_research_optout",
    metadata,
    # Every change of the research opt-out, so the hub honours it as it stood at any instant
    # (migration 0018); ``access_preference.research_optout`` stays the current value.
    Column("patient_id", String(64), primary_key=True),
    Column("changed_at", String(32), primary_key=True),
    Column("opted_out", Boolean, nullable=False),
)
