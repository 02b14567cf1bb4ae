"""WatchService: the scan of the audit log for abnormal access, and the security officer's queue.

A scan reads the professionals' accesses of the last days (and of the weeks before, for each
user's habits) from the audit log, explains what care explains, scores the rest
(carnet/watch/scorer.py) and keeps, for each day, the best user-days within the officer's budget
(``watch_alert_budget`` a day per 1,000 active professionals) and above ``watch_min_score``.
An alert names the account, the day, the reasons (codes), the suspect records and the events
behind them: ids and words only.

Only a security officer sees and closes alerts: an operator account the operator granted the
role (``carnet watch grant``), or the operator's own CLI. Every look at the queue, every
closing and every refusal is an audit event. Closing an alert as ``confirmed`` tells each patient
it names who chose to be alerted of professionals' access (the outbox, like the other alerts).
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.authn.models import access_account
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.db.instants import stamp, utc_now
from carnet.record import notifications as templates
from carnet.record.models import record_alert_choice
from carnet.record.outbox import notify
from carnet.watch.explain import EvidenceReader
from carnet.watch.features import LOCAL_ZONE, episodes, histories
from carnet.watch.log import read_window
from carnet.watch.models import FLAGS, OUTCOMES, watch_alert, watch_flag, watch_officer
from carnet.watch.scorer import Candidate, candidates, score

LOCAL_OPERATOR = "local-operator"  # the CLI's caller on this machine (RequestContext)


class WatchError(Exception):
    """A refused request: ``status`` 400 (bad input), 403 (not an officer) or 404 (unknown)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ScanReport:
    days: list[str]
    accesses: int
    episodes: int
    unexplained: int
    new_alerts: int
    updated_alerts: int


class WatchService:
    """Scans the log and keeps the security officer's queue; every look at it is audited."""

    def __init__(
        self,
        engine: Engine,
        audit: AuditService,
        reader: EvidenceReader,
        *,
        per_1000: float = 20.0,
        history_days: int = 28,
        min_score: float = 1.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.reader = reader
        self.per_1000 = per_1000
        self.history_days = history_days
        self.min_score = min_score
        self.now = now or utc_now

    # -- who may -------------------------------------------------------------------------------

    def is_officer(self, principal: Principal) -> bool:
        if principal.kind is not Kind.OPERATOR:
            return False
        if principal.subject == LOCAL_OPERATOR:
            return True
        with self.engine.connect() as conn:
            row = conn.execute(
                select(watch_officer.c.account_id).where(
                    watch_officer.c.account_id == principal.subject
                )
            ).first()
        return row is not None

    def _officer(self, ctx: RequestContext, action: str) -> None:
        if not self.is_officer(ctx.principal):
            self.refused(ctx, action)
            raise WatchError(403, "the alert queue is for security officers")

    def refused(self, ctx: RequestContext, action: str) -> None:
        """Record that ``ctx`` was refused the queue (a page refuses before asking for it)."""
        self.audit.record_failure(replace(ctx, rule="watch-officer-only"), action, None, None, 403)

    def grant(self, ctx: RequestContext, account_id: str, *, on: bool = True) -> None:
        """Give (or take back) the security-officer role: the operator's CLI only, to an
        operator account."""
        action = "watch-officer-grant" if on else "watch-officer-revoke"
        if ctx.principal.subject != LOCAL_OPERATOR or ctx.principal.kind is not Kind.OPERATOR:
            self.audit.record_failure(
                replace(ctx, rule="watch-operator-only"), action, None, None, 403
            )
            raise WatchError(403, "only the operator's CLI grants the role")
        a = access_account.c
        with writing(self.engine) as conn:
            kind = conn.execute(select(a.kind).where(a.account_id == account_id)).scalar()
            if kind != Kind.OPERATOR.value:
                raise WatchError(404, "no operator account with this id")
            conn.execute(delete(watch_officer).where(watch_officer.c.account_id == account_id))
            if on:
                conn.execute(
                    insert(watch_officer).values(
                        account_id=account_id, granted_at=stamp(self.now())
                    )
                )
            self._audit_in(conn, ctx, action, [], f"account:{account_id}")

    # -- the flag list -------------------------------------------------------------------------

    def flag(self, ctx: RequestContext, patient_id: str, flag: str, *, on: bool = True) -> None:
        """Put a record on (or off) the list of people whose records draw attention."""
        action = "watch-flag" if on else "watch-unflag"
        self._officer(ctx, action)
        if flag not in FLAGS:
            raise WatchError(400, f"a flag is one of {', '.join(FLAGS)}")
        f = watch_flag.c
        with writing(self.engine) as conn:
            conn.execute(delete(watch_flag).where(f.patient_id == patient_id, f.flag == flag))
            if on:
                conn.execute(
                    insert(watch_flag).values(
                        patient_id=patient_id,
                        flag=flag,
                        set_by=ctx.actor[:64],
                        created_at=stamp(self.now()),
                    )
                )
            self._audit_in(conn, ctx, action, [], f"flag:{flag} patient:{patient_id}")

    # -- the scan ------------------------------------------------------------------------------

    def scan(self, ctx: RequestContext, *, days: int = 1) -> ScanReport:
        """Score the last ``days`` local days (today included) and queue the alerts."""
        self._officer(ctx, "watch-scan")
        if not 1 <= days <= 31:
            self.audit.record_failure(
                replace(ctx, rule="watch-bad-days"), "watch-scan", None, None, 400
            )
            raise WatchError(400, "scan between 1 and 31 days")
        today = self.now().astimezone(LOCAL_ZONE).date()
        scored_days = {today - timedelta(days=i) for i in range(days)}
        since = datetime.combine(
            min(scored_days) - timedelta(days=self.history_days), time(0), LOCAL_ZONE
        )
        window = read_window(self.audit, since)
        pairs = {(a.actor, a.patient_id) for a in window.accesses if a.day in scored_days}
        evidence = self.reader.read(pairs, scored_days)
        evidence.failed_sign_ins = window.failed_sign_ins
        found = episodes(
            window.accesses, evidence, histories(window.accesses, min(scored_days)), scored_days
        )
        cands = [c for c in candidates(score(found)) if c.score >= self.min_score]
        active = len({a.actor for a in window.accesses})
        per_day = max(1, math.ceil(self.per_1000 * active / 1000))
        new, updated = self._queue(cands, per_day)
        report = ScanReport(
            days=sorted(d.isoformat() for d in scored_days),
            accesses=len(window.accesses),
            episodes=len(found),
            unexplained=sum(1 for e in found if e.explanation is None),
            new_alerts=new,
            updated_alerts=updated,
        )
        self._audit(ctx, "watch-scan", [], f"days:{days} alerts:{new}+{updated}")
        return report

    def _queue(self, cands: list[Candidate], per_day: int) -> tuple[int, int]:
        w = watch_alert.c
        by_day: dict[date, list[Candidate]] = defaultdict(list)
        for cand in cands:
            by_day[cand.day].append(cand)
        new = updated = 0
        moment = stamp(self.now())
        with writing(self.engine) as conn:
            for day, todays in by_day.items():
                key = day.isoformat()
                held = conn.execute(select(w.actor, w.status).where(w.day == key)).all()
                status = {str(r.actor): str(r.status) for r in held}
                count = len(status)
                for cand in sorted(todays, key=lambda c: -c.score):
                    values = {
                        "score": round(cand.score, 4),
                        "reasons": json.dumps(cand.reasons),
                        "patients": json.dumps(cand.patients),
                        "events": json.dumps(sorted(set(cand.event_ids))[:500]),
                        "unexplained": cand.unexplained,
                    }
                    if cand.actor in status:
                        if status[cand.actor] == "open":
                            conn.execute(
                                update(watch_alert)
                                .where(w.actor == cand.actor, w.day == key)
                                .values(**values)
                            )
                            updated += 1
                    elif count < per_day:
                        conn.execute(
                            insert(watch_alert).values(
                                alert_id=str(uuid.uuid4()),
                                actor=cand.actor,
                                day=key,
                                status="open",
                                created_at=moment,
                                **values,
                            )
                        )
                        count += 1
                        new += 1
        return new, updated

    # -- the queue -----------------------------------------------------------------------------

    def alerts(self, ctx: RequestContext, *, open_only: bool = True) -> list[dict[str, Any]]:
        """The queue, best first (open alerts by default); audited."""
        self._officer(ctx, "watch-alerts")
        w = watch_alert.c
        query = select(watch_alert).order_by(w.status.desc(), w.score.desc(), w.day.desc())
        if open_only:
            query = query.where(w.status == "open")
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(500)).all()
        found = [_alert(r) for r in rows]
        self._audit(ctx, "watch-alerts", [a["id"] for a in found], None)
        return found

    def alert(self, ctx: RequestContext, alert_id: str) -> dict[str, Any]:
        """One alert; audited."""
        self._officer(ctx, "watch-alert")
        with self.engine.connect() as conn:
            row = conn.execute(
                select(watch_alert).where(watch_alert.c.alert_id == alert_id)
            ).first()
        if row is None:
            self.audit.record_failure(ctx, "watch-alert", None, None, 404)
            raise WatchError(404, "no such alert")
        self._audit(ctx, "watch-alert", [alert_id], None)
        return _alert(row)

    def close(self, ctx: RequestContext, alert_id: str, outcome: str) -> dict[str, Any]:
        """Close an alert with its outcome; a confirmed one tells the patients who chose alerts."""
        self._officer(ctx, "watch-close")
        if outcome not in OUTCOMES:
            self.audit.record_failure(
                replace(ctx, rule="watch-bad-outcome"), "watch-close", None, None, 400
            )
            raise WatchError(400, f"the outcome is one of {', '.join(OUTCOMES)}")
        w = watch_alert.c
        moment = self.now()
        with writing(self.engine) as conn:
            row = conn.execute(select(watch_alert).where(w.alert_id == alert_id)).first()
            if row is not None and row.status == "open":
                conn.execute(
                    update(watch_alert)
                    .where(w.alert_id == alert_id)
                    .values(
                        status="closed",
                        closed_at=stamp(moment),
                        closed_by=ctx.actor[:64],
                        outcome=outcome,
                    )
                )
                told = 0
                if outcome == "confirmed":
                    told = self._tell_patients(conn, json.loads(row.patients), moment)
                detail = f"outcome:{outcome} told:{told}"
                self._audit_in(conn, ctx, "watch-close", [alert_id], detail)
        if row is None:
            self.audit.record_failure(ctx, "watch-close", None, None, 404)
            raise WatchError(404, "no such alert")
        if row.status != "open":
            self.audit.record_failure(ctx, "watch-close", None, None, 409)
            raise WatchError(409, "this alert is already closed")
        return self.alert(ctx, alert_id)

    @staticmethod
    def _tell_patients(conn: Connection, patients: list[str], moment: datetime) -> int:
        """Queue the abnormal-access alert for each named record whose person chose to be told
        of professionals' access; returns how many records were told."""
        c = record_alert_choice.c
        told = 0
        for patient_id in patients:
            chosen = conn.execute(select(c.first_access).where(c.patient_id == patient_id)).scalar()
            if chosen:
                notify(conn, patient_id, templates.ALERT_ABNORMAL_ACCESS, moment)
                told += 1
        return told

    def open_count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(watch_alert)
                    .where(watch_alert.c.status == "open")
                ).scalar_one()
            )

    # -- audit ---------------------------------------------------------------------------------

    def _audit(
        self, ctx: RequestContext, action: str, alert_ids: list[str], detail: str | None
    ) -> None:
        with writing(self.engine) as conn:
            self._audit_in(conn, ctx, action, alert_ids, detail)

    def _audit_in(
        self,
        conn: Connection,
        ctx: RequestContext,
        action: str,
        alert_ids: list[str],
        detail: str | None,
    ) -> None:
        """One event naming the alerts (outside any record: the queue is not health data)."""
        rule = "watch-officer" if detail is None else f"watch-officer {detail}"
        touched = [Touched("WatchAlert", a, None, None) for a in alert_ids[:200]]
        event = build_event(actor_of(replace(ctx, rule=rule)), action, None, 200, touched)
        self.audit.store.append(conn, [event])
        self.audit.appended(1)


def _alert(row: Any) -> dict[str, Any]:
    return {
        "id": row.alert_id,
        "actor": row.actor,
        "day": row.day,
        "score": row.score,
        "reasons": json.loads(row.reasons),
        "patients": json.loads(row.patients),
        "events": json.loads(row.events),
        "unexplained": row.unexplained,
        "status": row.status,
        "created": row.created_at,
        "closed": row.closed_at,
        "closedBy": row.closed_by,
        "outcome": row.outcome,
    }
