"""The patient's medical profile: persons and their representatives also write family history
(FamilyMemberHistory), people to contact (RelatedPerson) and "my professionals" (CareTeam).

Why: the portal's "Mon profil médical" stores each kind as a FHIR resource the person authored;
these three were outside the ``person-self-write`` and ``representative-write`` rules. Only rows
still holding the old default list change: a list an operator edited is left as they wrote it.
An empty table is filled by ``seed_rules`` with the new defaults.

Revision ID: 0027
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0022"
branch_labels = None
depends_on = None

_RULES = ("person-self-write", "representative-write")
_BEFORE = (
    "Observation,AllergyIntolerance,Immunization,MedicationStatement,Condition,DocumentReference"
)
_AFTER = _BEFORE + ",FamilyMemberHistory,RelatedPerson,CareTeam"


def _set(before: str, after: str) -> None:
    rules = sa.table("access_rule", sa.column("rule_id"), sa.column("res_type"))
    op.get_bind().execute(
        rules.update()
        .where(rules.c.rule_id.in_(_RULES), rules.c.res_type == before)
        .values(res_type=after)
    )


def upgrade() -> None:
    _set(_BEFORE, _AFTER)


def downgrade() -> None:
    _set(_AFTER, _BEFORE)
