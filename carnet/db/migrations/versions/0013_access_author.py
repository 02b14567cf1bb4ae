"""Authors of items (``access_author``) and the rule that lets a professional read what they
deposited (``author-read``).

Why: a deposit used to create a care relationship, opening the whole record to anyone who wrote
one item naming the patient. A deposit now gives its author their own item only, which needs
the author recorded at write time from the authenticated caller. Existing rule tables get the
new rule; an empty one is filled by ``seed_rules`` as before. The care relationships deposits
opened are closed (a declaration or an encounter rewrote its source, so those stay). Items written
before take their author from the audit log's first successful create event, so that a patient's
own entries stay theirs rather than counting as written by care.

Revision ID: 0013
Revises: 0012
"""

import json
from typing import Any

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
    care = sa.table("access_care", sa.column("source"))
    conn.execute(care.delete().where(care.c.source == "deposit"))
    _backfill_authors(conn)


# The event roles whose author a row records, and the author's id in the event (as
# ``authorship_of`` records it: a person's account id, an app's client id). A professional's RPPS
# is not in the event: their items keep no row and count as written by care, as they were.
def _author(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """(kind, author, when) of a create event's caller, None for callers that get no row."""
    when = str(event.get("time") or "")
    if event.get("role") == "person" and event.get("actor"):
        return "person", str(event["actor"]), when
    if event.get("role") == "app" and (event.get("client") or event.get("actor")):
        return "app", str(event.get("client") or event.get("actor")), when
    return None


def _backfill_authors(conn: sa.Connection) -> None:
    """Authors of the items created before this revision, from the audit log (the first
    successful create of each item decides, as ``record_authors`` keeps the first)."""
    events = sa.table("audit_event", sa.column("seq"), sa.column("body"))
    slices = sa.table("audit_event_patient", sa.column("seq"), sa.column("slice"))
    created: dict[int, tuple[tuple[str, str, str] | None, list[str]]] = {}
    for seq, body in conn.execute(sa.select(events.c.seq, events.c.body)):
        event = json.loads(bytes(body))
        if event.get("action") == "create" and int(event.get("outcome") or 500) < 400:
            created[int(seq)] = (_author(event), list(event.get("resources") or []))
    for seq, data in conn.execute(sa.select(slices.c.seq, slices.c.slice)):
        if int(seq) in created:
            created[int(seq)][1].extend(json.loads(bytes(data)).get("resources") or [])
    authors: dict[tuple[str, str], tuple[str, str, str] | None] = {}
    for seq in sorted(created):
        author, refs = created[seq]
        for ref in sorted(refs):  # the order within one event does not matter: one author
            res_type, _, rest = str(ref).partition("/")
            res_id = rest.split("/", 1)[0]
            if res_type and res_id:
                authors.setdefault((res_type, res_id), author)
    table = sa.table(
        "access_author",
        *(sa.column(n) for n in ("res_type", "res_id", "author_kind", "author", "created_at")),
    )
    rows = [
        {"res_type": t, "res_id": i, "author_kind": a[0], "author": a[1], "created_at": a[2]}
        for (t, i), a in authors.items()
        if a is not None
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(table.insert(), rows[start : start + 1000])


def downgrade() -> None:
    rules = sa.table("access_rule", sa.column("rule_id"))
    op.get_bind().execute(rules.delete().where(rules.c.rule_id == _RULE["rule_id"]))
    op.drop_index("ix_access_author_author", table_name="access_author")
    op.drop_table("access_author")
