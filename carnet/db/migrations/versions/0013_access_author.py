"""Authors of items (``access_author``) and the rule that lets a professional read what they
deposited (``author-read``).

Why: a deposit used to create a care relationship, opening the whole record to anyone who wrote
one item naming the patient. A deposit now gives its author their own item only, which needs
the author recorded at write time from the authenticated caller. Existing rule tables get the
new rule; an empty one is filled by ``seed_rules`` as before.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_RULE = {
    "rule_id": "author-read",
    "actor": "professional",
    "profession": "*",
    "res_type": "*",
    "action": "read",
    "relationship": "author",
    "effect": "allow",
    "description": "A professional reads the items they deposited themselves, and nothing more.",
}


def upgrade() -> None:
    op.create_table(
        "access_author",
        sa.Column("res_type", sa.String(64), primary_key=True),
        sa.Column("res_id", sa.String(64), primary_key=True),
        sa.Column("author_kind", sa.String(16), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_access_author_author", "access_author", ["author_kind", "author"])
    conn = op.get_bind()
    rules = sa.table("access_rule", *(sa.column(name) for name in _RULE))
    seeded = conn.execute(sa.select(sa.func.count()).select_from(rules)).scalar_one()
    if seeded:  # an empty table is filled with every default by seed_rules
        conn.execute(rules.delete().where(rules.c.rule_id == _RULE["rule_id"]))
        conn.execute(rules.insert().values(**_RULE))


def downgrade() -> None:
    rules = sa.table("access_rule", sa.column("rule_id"))
    op.get_bind().execute(rules.delete().where(rules.c.rule_id == _RULE["rule_id"]))
    op.drop_index("ix_access_author_author", table_name="access_author")
    op.drop_table("access_author")
