"""Release requests: a table of aggregates leaves a project only after automatic disclosure
control (the permit's profile, then the gates) and two independent output checkers' approvals.

A checker holds the output_checker role, is neither the requester nor in the project's team, and
decides once per request; one refusal ends the request. Until two approvals the released table
stays inside the project; the true counts never leave the workspace at all (only the controlled
cells are stored). Each output's record is kept in ACRO's results.json form (acro_record.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from carnet.audit.events import Touched, build_event
from carnet.audit.service import AuditService, actor_of
from carnet.caller import RequestContext
from carnet.db.engine import writing
from carnet.db.instants import utc_now
from carnet.form_submission import record_id
from carnet.hub.disclosure.acro_record import (
    RESULTS_FILE,
    output_entry,
    results_document,
    write_bundle,
)
from carnet.hub.disclosure.gates import check_columns, check_file
from carnet.hub.disclosure.profiles import choosable_profiles, profile_named
from carnet.hub.disclosure.tables import TableRequest, TableRequestError, control_table
from carnet.hub.errors import HubError
from carnet.hub.extracts import PermitExtracts
from carnet.hub.models import hub_release, hub_release_review
from carnet.hub.permits import PermitService
from carnet.hub.roles import OUTPUT_CHECKER
from carnet.hub.workspace import WorkspaceService, bounded, open_extract, single_select

REFUSED_BY_GATES, PENDING, RELEASED, REFUSED = "refused_by_gates", "pending", "released", "refused"
APPROVALS_NEEDED = 2
AUDIT_TYPE = "ResearchRelease"


@dataclass(frozen=True)
class Review:
    """One output checker's decision on a request."""

    checker: str
    decision: str
    comment: str | None
    decided_at: datetime


@dataclass(frozen=True)
class Release:
    release_id: str
    permit_id: str
    requester: str
    state: str
    request: dict[str, Any]
    released_table: list[dict[str, Any]] | None
    record: dict[str, Any] | None
    gate_reasons: list[str]
    approvals: tuple[str, ...]
    requested_at: datetime | None = None

    @property
    def profile(self) -> str | None:
        """The disclosure profile its table was controlled with (None: refused by the gates)."""
        return None if self.record is None else self.record["properties"].get("profile")

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.release_id,
            "permit": self.permit_id,
            "state": self.state,
            "request": self.request,
            "gateReasons": self.gate_reasons,
            "approvals": len(self.approvals),
            "status": self.record["status"] if self.record else None,
        }


def table_request(body: dict[str, Any]) -> TableRequest:
    """A table request from JSON; HubError(400) on bad input."""
    try:
        request = TableRequest(
            source_sql=single_select(str(body["sql"])),
            rows=str(body["rows"]),
            columns=None if body.get("columns") is None else str(body["columns"]),
            value=None if body.get("value") is None else str(body["value"]),
            statistic=str(body.get("statistic", "count")),  # type: ignore[arg-type]
        )
        return request.checked()
    except (KeyError, TypeError, TableRequestError) as exc:
        raise HubError(400, f"bad table request: {exc}") from None


def _csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue().encode()


class ReleaseService:
    """Release requests, their automatic control and their two approvals; audited."""

    def __init__(
        self,
        engine: Engine,
        audit: AuditService,
        permits: PermitService,
        extracts: PermitExtracts,
        workspace: WorkspaceService,
        now: Callable[[], datetime] = utc_now,
        outputs_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.permits = permits
        self.extracts = extracts
        self.workspace = workspace
        self.now = now
        self.outputs_dir = outputs_dir  # <outputs_dir>/<project>/releases/<request>/: SACRO's

    def _event(self, ctx: RequestContext, action: str, release_id: str | None, status: int) -> None:
        who = actor_of(replace(ctx, rule=f"hub {action}" + ("" if status < 400 else " refused")))
        touched = [Touched(AUDIT_TYPE, release_id, None, None)] if release_id else []
        self.audit.append(
            [build_event(who, action, AUDIT_TYPE, status, touched, moment=self.now())]
        )

    def _refuse(
        self, ctx: RequestContext, action: str, release_id: str | None, status: int, message: str
    ) -> HubError:
        self._event(ctx, action, release_id, status)
        return HubError(status, message)

    def request(
        self,
        ctx: RequestContext,
        permit_id: str,
        request: TableRequest,
        profile_name: str | None = None,
        submission: str | None = None,
    ) -> Release:
        """Control a table over the project's extract and queue it for the checkers. The table
        is controlled with the permit's profile, or with ``profile_name`` if it is at least as
        strict (never a laxer one: HubError 400). With the form's ``submission`` id, the same
        form sent again finds the request the first send made (one request, the replay
        audited as such)."""
        path = self.workspace.extract_path(ctx, permit_id, "release-request")
        release_id = record_id(submission, "release", ctx.principal.subject, permit_id)
        asked = self._asked_before(ctx, release_id)
        if asked is not None:
            return asked
        permit = self.permits.get(permit_id)
        latest = self.extracts.latest_extract(permit_id)
        if latest is not None and latest[1]:
            raise self._refuse(
                ctx, "release-request", None, 409, "the extract's risk report blocks release"
            )
        allowed = choosable_profiles(permit.application.disclosure_profile)
        if profile_name is not None and profile_name not in allowed:
            raise self._refuse(
                ctx,
                "release-request",
                None,
                400,
                "the disclosure profile is the permit's or a stricter one: " + ", ".join(allowed),
            )
        profile = profile_named(profile_name or allowed[0])
        names = [n for n in (request.rows, request.columns, request.value) if n]
        gate = check_columns(names)
        released: list[dict[str, Any]] | None = None
        record: dict[str, Any] | None = None
        reasons = list(gate.reasons)
        if gate.passed:
            extract = open_extract(path)
            try:
                with bounded(extract, self.workspace.seconds):  # the researcher's SQL: 400 or 408
                    table = control_table(extract, request, profile)
            finally:
                extract.close()
            released = table.released_rows()
            file_gate = check_file("output.csv", _csv(released), profile)
            reasons += file_gate.reasons
            record = output_entry(release_id, table, f"{release_id}.csv", moment=self.now())
            record["properties"]["profile"] = profile_name or allowed[0]
        state = PENDING if not reasons else REFUSED_BY_GATES
        try:
            with writing(self.engine) as conn:
                conn.execute(
                    insert(hub_release).values(
                        release_id=release_id,
                        permit_id=permit_id,
                        requester=ctx.principal.subject,
                        state=state,
                        request=json.dumps(_request_json(request)),
                        released_table=None if reasons else json.dumps(released),
                        record=None if reasons else json.dumps(record),
                        gate_reasons=json.dumps(reasons),
                        requested_at=self.now(),
                    )
                )
        except IntegrityError:  # the same form, sent twice at once: the other send stored it
            asked = self._asked_before(ctx, release_id)
            if asked is None:
                raise
            return asked
        self._event(ctx, "release-request", release_id, 200 if state == PENDING else 422)
        self._write_bundle(release_id)
        return self.get(release_id)

    def _asked_before(self, ctx: RequestContext, release_id: str) -> Release | None:
        """The caller's request already stored under ``release_id`` (a form sent again, audited
        as ``release-request-again``), or None."""
        with self.engine.connect() as conn:
            requester = conn.execute(
                select(hub_release.c.requester).where(hub_release.c.release_id == release_id)
            ).scalar_one_or_none()
        if requester is None:
            return None
        if requester != ctx.principal.subject:  # never another's (the id includes the sender)
            raise self._refuse(ctx, "release-request", None, 409, "the request exists")
        self._event(ctx, "release-request-again", release_id, 200)
        return self.get(release_id)

    def get(self, release_id: str) -> Release:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(hub_release).where(hub_release.c.release_id == release_id)
            ).first()
            approvals = conn.execute(
                select(hub_release_review.c.checker)
                .where(
                    hub_release_review.c.release_id == release_id,
                    hub_release_review.c.decision == "approve",
                )
                .order_by(hub_release_review.c.decided_at)
            ).scalars()
            approved = tuple(approvals)
        if row is None:
            raise HubError(404, "no such release request")
        m = row._mapping
        return Release(
            release_id=m["release_id"],
            permit_id=m["permit_id"],
            requester=m["requester"],
            state=m["state"],
            request=json.loads(m["request"]),
            released_table=json.loads(m["released_table"]) if m["released_table"] else None,
            record=json.loads(m["record"]) if m["record"] else None,
            gate_reasons=json.loads(m["gate_reasons"] or "[]"),
            approvals=approved,
            requested_at=m["requested_at"],
        )

    def review(
        self, ctx: RequestContext, release_id: str, decision: str, comment: str | None = None
    ) -> Release:
        """One checker's decision; the second approval releases the table."""
        if decision not in ("approve", "refuse"):
            # a refused decision too (audited), under one action name: the words sent are not kept
            raise self._refuse(
                ctx, "release-review", None, 400, "the decision is approve or refuse"
            )
        action = f"release-{decision}"
        release = self._aimed_at(ctx, action, release_id)
        subject = ctx.principal.subject
        permit = self.permits.get(release.permit_id)
        if not self._may_see(ctx, release):  # hidden from them: the 404 of a missing request
            raise self._refuse(ctx, action, release_id, 404, "no such release request")
        if not self.permits.roles.holds(subject, OUTPUT_CHECKER):
            raise self._refuse(ctx, action, release_id, 403, "only an output checker decides")
        if subject == release.requester or subject in permit.members:
            raise self._refuse(
                ctx, action, release_id, 403, "a checker is independent of the project"
            )
        if release.state != PENDING:
            raise self._refuse(ctx, action, release_id, 409, f"the request is {release.state}")
        with writing(self.engine) as conn:
            already = conn.execute(
                select(hub_release_review.c.checker).where(
                    hub_release_review.c.release_id == release_id,
                    hub_release_review.c.checker == subject,
                )
            ).first()
            if already is None:
                conn.execute(
                    insert(hub_release_review).values(
                        release_id=release_id,
                        checker=subject,
                        decision=decision,
                        comment=(comment or "")[:2000] or None,
                        decided_at=self.now(),
                    )
                )
                approvals = len(release.approvals) + (decision == "approve")
                state = REFUSED if decision == "refuse" else PENDING
                if decision == "approve" and approvals >= APPROVALS_NEEDED:
                    state = RELEASED
                conn.execute(
                    update(hub_release)
                    .where(hub_release.c.release_id == release_id)
                    .values(state=state, released_at=self.now() if state == RELEASED else None)
                )
        if already is not None:
            raise self._refuse(ctx, action, release_id, 409, "a checker decides once per request")
        self._event(ctx, action, release_id, 200)
        self._write_bundle(release_id)
        return self.get(release_id)

    def _aimed_at(self, ctx: RequestContext, action: str, release_id: str) -> Release:
        """The request an action aims at; one that does not exist is refused 404 and audited,
        as every refusal is (the id the caller made up is not recorded)."""
        try:
            return self.get(release_id)
        except HubError:
            raise self._refuse(ctx, action, None, 404, "no such release request") from None

    def _may_see(self, ctx: RequestContext, release: Release) -> bool:
        permit = self.permits.get(release.permit_id)
        subject = ctx.principal.subject
        return subject in permit.members or self.permits.roles.holds(subject, OUTPUT_CHECKER)

    def view(self, ctx: RequestContext, release_id: str) -> Release:
        """A request for its project's team and the checkers. Anyone else meets the same 404 as
        for a request that does not exist (a hidden item answers like a missing one, as a
        permit's ``PermitService.view``), audited naming the request it refused."""
        release = self._aimed_at(ctx, "release-read", release_id)
        if not self._may_see(ctx, release):
            raise self._refuse(ctx, "release-read", release_id, 404, "no such release request")
        return release

    def results_json(self, ctx: RequestContext, release_id: str) -> dict[str, Any]:
        """The request's record as ACRO's results.json, with the checkers' comments."""
        release = self.view(ctx, release_id)
        if release.record is None:
            raise HubError(409, "the request did not pass the automatic gates")
        return self._document(release)

    def _document(self, release: Release) -> dict[str, Any]:
        assert release.record is not None
        entry = dict(release.record)
        entry["comments"] = [
            f"{r.checker}: {r.decision}" + (f" - {r.comment}" if r.comment else "")
            for r in self.reviews_of(release.release_id)
        ]
        return results_document({release.release_id: entry})

    def reviews_of(self, release_id: str) -> list[Review]:
        """The checkers' decisions on a request, oldest first (for those who may view it)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(hub_release_review)
                .where(hub_release_review.c.release_id == release_id)
                .order_by(hub_release_review.c.decided_at)
            ).all()
        return [Review(r.checker, r.decision, r.comment, r.decided_at) for r in rows]

    def bundle_dir(self, release: Release) -> Path | None:
        """The folder holding the request's results.json beside its output (SACRO-Viewer's)."""
        if self.outputs_dir is None or release.record is None:
            return None
        project = self.permits.get(release.permit_id).project_id
        return self.outputs_dir / project / "releases" / release.release_id

    def _write_bundle(self, release_id: str) -> None:
        """Write (again) the request's results.json and its released table's CSV."""
        release = self.get(release_id)
        folder = self.bundle_dir(release)
        if folder is None or release.released_table is None:
            return
        table = {f"{release_id}.csv": _csv(release.released_table)}
        write_bundle(folder, self._document(release), table)

    def sacro_files(self, ctx: RequestContext, release_id: str) -> dict[str, bytes]:
        """The files of the request's SACRO folder (results.json and the released table it
        names), for its team and the checkers: what SACRO-Viewer opens."""
        release = self.view(ctx, release_id)
        if release.record is None or release.released_table is None:
            raise HubError(409, "the request did not pass the automatic gates")
        return {
            RESULTS_FILE: json.dumps(self._document(release), indent=4).encode(),
            f"{release_id}.csv": _csv(release.released_table),
        }

    def for_permit(self, ctx: RequestContext, permit_id: str) -> list[Release]:
        """A project's requests, newest first, for its team (anyone else: 404, audited)."""
        try:
            permit = self.permits.get(permit_id)
        except HubError:
            permit = None
        if permit is None or ctx.principal.subject not in permit.members:
            raise self._refuse(ctx, "release-list", None, 404, "no such permit")
        with self.engine.connect() as conn:
            ids = conn.execute(
                select(hub_release.c.release_id)
                .where(hub_release.c.permit_id == permit_id)
                .order_by(hub_release.c.requested_at.desc())
            ).scalars()
            found = list(ids)
        return [self.get(release_id) for release_id in found]

    def queue(self, ctx: RequestContext) -> list[Release]:
        """Every request that passed the gates, pending first then newest, for output checkers
        (anyone else: 403, audited)."""
        if not self.permits.roles.holds(ctx.principal.subject, OUTPUT_CHECKER):
            raise self._refuse(ctx, "release-queue", None, 403, "only an output checker")
        with self.engine.connect() as conn:
            ids = conn.execute(
                select(hub_release.c.release_id)
                .where(hub_release.c.state != REFUSED_BY_GATES)
                .order_by(hub_release.c.requested_at.desc())
            ).scalars()
            listed = list(ids)
        found = [self.get(release_id) for release_id in listed]
        return sorted(found, key=lambda r: r.state != PENDING)

    def output(self, ctx: RequestContext, release_id: str) -> list[dict[str, Any]]:
        """The released table, once two checkers approved it."""
        release = self.view(ctx, release_id)
        if release.state != RELEASED or release.released_table is None:
            raise self._refuse(ctx, "release-output", release_id, 409, "not released")
        self._event(ctx, "release-output", release_id, 200)
        return release.released_table


def _request_json(request: TableRequest) -> dict[str, Any]:
    return {
        "sql": request.source_sql,
        "rows": request.rows,
        "columns": request.columns,
        "value": request.value,
        "statistic": request.statistic,
    }
