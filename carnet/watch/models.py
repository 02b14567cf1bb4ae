"""Tables of abnormal-access detection: the security officer's alert queue, the flag list of
people whose records draw attention (VIPs, staff) and who holds the security-officer role.

Ids, dates, scores and reason codes only: never names, never clinical content. Times are UTC
stamps, which sort as text. Migration 0022.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from carnet.db.metadata import metadata

OUTCOMES = ("confirmed", "legitimate", "false-positive", "duplicate")  # how an alert is closed
FLAGS = ("vip", "staff")  # the flag list: records that draw attention

watch_alert = Table(
    "watch_alert",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("actor", String(64), nullable=False),  # the account whose access is questioned
    Column("day", String(10), nullable=False),  # the local day (YYYY-MM-DD) of the access
    Column("score", Float, nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list of reason codes (carnet/watch/rules.py)
    Column("patients", Text, nullable=False),  # JSON list of patient ids (the suspect records)
    Column("events", Text, nullable=False),  # JSON list of audit event ids behind the alert
    Column("unexplained", Integer, nullable=False),  # records opened that day without a reason
    Column("status", String(8), nullable=False),  # open | closed
    Column("created_at", String(32), nullable=False),
    Column("closed_at", String(32), nullable=True),
    Column("closed_by", String(64), nullable=True),
    Column("outcome", String(16), nullable=True),  # a code of carnet.watch.service.OUTCOMES
)
Index("uq_watch_alert_actor_day", watch_alert.c.actor, watch_alert.c.day, unique=True)
Index("ix_watch_alert_status", watch_alert.c.status, watch_alert.c.score)

watch_flag = Table(
    "watch_flag",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("flag", String(8), primary_key=True),  # vip | staff
    Column("set_by", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
)

watch_officer = Table(
    "watch_officer",
    metadata,
    Column("account_id", String(64), primary_key=True),  # an operator account
    Column("granted_at", String(32), nullable=False),
)
