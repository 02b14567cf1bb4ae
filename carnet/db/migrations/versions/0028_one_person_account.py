"""One person account per space, as a constraint: a unique index on a person account's
``patient_id`` (``ux_access_account_person``, partial: person accounts only, on SQLite and
PostgreSQL alike).

Why: the rule was checked by the activation pages alone, then by ``AccountService.insert_in``,
in a read before the insertion: two insertions at once, or a tool that skips the service, could
still give a Patient two person accounts (two ways into one record). The database now refuses
the second one, whoever inserts it.

A store that already breaks the rule is refused before anything changes (every migration runs
in one transaction, carnet/db/migrations/env.py): the operator first decides which account is
the person's and removes the others, since guessing could hand a record to the wrong holder. The message gives how many spaces are concerned, never their ids in a log line.

Revision ID: 0028
Revises: 0027
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_INDEX = "ux_access_account_person"


def upgrade() -> None:
    accounts = sa.table("access_account", sa.column("kind"), sa.column("patient_id"))
    shared = (
        sa.select(accounts.c.patient_id)
        .where(accounts.c.kind == "person", accounts.c.patient_id.is_not(None))
        .group_by(accounts.c.patient_id)
        .having(sa.func.count() > 1)
        .subquery()
    )
    spaces = op.get_bind().execute(sa.select(sa.func.count()).select_from(shared)).scalar_one()
    if spaces:
        raise RuntimeError(
            f"migration 0028 refused: {spaces} space(s) have more than one person account; "
            "one person account per space: keep the person's own and remove the others first"
        )
    person = sa.text("kind = 'person'")
    op.create_index(
        _INDEX,
        "access_account",
        ["patient_id"],
        unique=True,
        sqlite_where=person,
        postgresql_where=person,
    )


def downgrade() -> None:
    op.drop_index(_INDEX, "access_account")
