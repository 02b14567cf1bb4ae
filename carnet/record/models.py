"""Tables of the personal space: one space per person, legal representatives, notification outbox.

Ids, states, reason and template codes and UTC instants only (ISO strings with microseconds and a
``Z``, which sort as text): never a name, never clinical content. The person's matricule INS is
kept as a keyed blind hash, so an objection or a closure is remembered even after the space's data
is crypto-shredded, without keeping the number itself.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table

from carnet.db.metadata import metadata

PENDING, OPEN, REFUSED, CLOSED, SHREDDED = "pending", "open", "refused", "closed", "shredded"

record_space = Table(
    "record_space",
    metadata,
    Column("patient_id", String(64), primary_key=True),  # the person's FHIR Patient
    Column("ins_hash", String(32), nullable=True),  # blind hash of the matricule INS
    Column("state", String(12), nullable=False),  # pending | open | refused | closed | shredded
    Column("source", String(16), nullable=False),  # register | request
    Column("provisioned_at", String(32), nullable=False),
    Column("objection_deadline", String(32), nullable=True),  # end of the objection window
    Column("opened_at", String(32), nullable=True),
    Column("closed_at", String(32), nullable=True),  # refused or closed
    Column("reason", String(24), nullable=True),  # objection | request | death | operator
    Column("retention_until", String(32), nullable=True),  # data kept until, then shredded
    Column("shredded_at", String(32), nullable=True),
    Column("updated_at", String(32), nullable=False),
)
Index("ix_record_space_ins_hash", record_space.c.ins_hash, unique=True)
Index("ix_record_space_state", record_space.c.state, record_space.c.objection_deadline)
Index("ix_record_space_retention", record_space.c.state, record_space.c.retention_until)

record_representative = Table(
    "record_representative",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("patient_id", String(64), nullable=False),  # the person represented
    Column("representative_patient_id", String(64), nullable=False),  # who acts for them
    Column("kind", String(12), nullable=False),  # parent | guardian | curator
    Column("source", String(16), nullable=False),  # register | declared
    Column("since", String(32), nullable=False),
    Column("until", String(32), nullable=True),  # exclusive: a parent's ends at the 18th birthday
    Column("ended_at", String(32), nullable=True),  # ended early (revoked, space shredded)
)
Index("ix_record_representative_patient", record_representative.c.patient_id)
Index(
    "ix_record_representative_representative",
    record_representative.c.representative_patient_id,
)

record_notification = Table(
    "record_notification",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("patient_id", String(64), nullable=False),  # whose space it is about
    Column("recipient_patient_id", String(64), nullable=False),  # the person or a representative
    Column("kind", String(32), nullable=False),  # template code (space-provisioned, ...)
    Column("created_at", String(32), nullable=False),
    Column("sent_at", String(32), nullable=True),
    Column("channel", String(16), nullable=True),  # the channel that delivered it
    # A one-time code the person must receive (activation, password reset): kept in clear only
    # until the channel has delivered it, then erased; record_activation keeps its digest.
    Column("secret", String(64), nullable=True),
)
Index("ix_record_notification_sent", record_notification.c.sent_at)
Index("ix_record_notification_patient", record_notification.c.patient_id)

# One-time codes sent through the outbox: the first activation of an automatically created space,
# a forgotten password. Only the SHA-256 digest of the code is kept here.
record_activation = Table(
    "record_activation",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),  # activation | password-reset
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("used_at", String(32), nullable=True),
)
Index("ix_record_activation_patient", record_activation.c.patient_id)
# -- alerts the patient chooses (migration 0018) -------------------------------------------------

record_alert_choice = Table(
    "record_alert_choice",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("first_access", Boolean, nullable=False),  # a professional's first access
    Column("new_document", Boolean, nullable=False),  # a document deposited by someone else
    Column("updated_at", String(32), nullable=False),
)  # emergency access is always notified (EHDS art. 9): not a choice, so no column

record_alert_seen = Table(
    "record_alert_seen",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("actor", String(64), primary_key=True),  # a professional's account id
    Column("first_at", String(32), nullable=False),
)

record_alert_cursor = Table(
    "record_alert_cursor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # the single row: 1
    Column("after_leaf", BigInteger, nullable=False),  # the last leaf index the sweep read
)
