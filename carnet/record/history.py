"""The patient's access history as a person reads it: who, when, what, why; filters, CSV, proofs.

Built on the audit log's history (``AuditService.patient_history``, or ``visible_history`` when the
record has items hidden from the reader), so it shows exactly what ``GET /fhir/AuditEvent`` would:
the same gate (the patient, their representatives), the same items left out, every read of it an
audit event itself. An entry names its actor by account id in the log; here the account says
whether it is a professional (RPPS, profession) and the directory gives their name, read as the
reader (directory resources are shared). Each entry can be checked against the signed checkpoint
(``verify``) and downloaded as a proof file for the independent verifier of docs/audit.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from carnet.audit.hidden import (
    HistoryGate,
    item_of,
    readable_event,
    shown,
    slice_refs,
    visible_history,
)
from carnet.audit.inclusion import InclusionCheck, check_inclusion, proof_file
from carnet.audit.service import (
    HISTORY_RULE,
    AuditService,
    HistoryPage,
    LoggedEvent,
)
from carnet.caller import RequestContext
from carnet.db.instants import stamp, utc_now
from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService

RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
HISTORY_MONTHS = 12
PAGE = 2000  # events read from the log per query (each query is an audited read)
MAX_EVENTS = 20_000  # a year of a very busy record; older entries are in the NDJSON export

# Why an access happened, as the history says it (the page words them in French).
CARE, MEDECIN_TRAITANT, EMERGENCY = "care", "medecin-traitant", "emergency"
SELF, REPRESENTATIVE, APP, PLATFORM = "self", "representative", "app", "platform"
KINDS = (CARE, MEDECIN_TRAITANT, EMERGENCY, SELF, REPRESENTATIVE, APP, PLATFORM, "refused")


class HistoryUnavailableError(Exception):
    """No history for this reader: not theirs, or no such record (one answer for both)."""


class AccountLike(Protocol):
    @property
    def patient_id(self) -> str | None: ...
    @property
    def rpps(self) -> str | None: ...
    @property
    def profession(self) -> str | None: ...


class AccountDirectory(Protocol):
    def account(self, account_id: str) -> AccountLike | None: ...


@dataclass(frozen=True)
class HistoryFilter:
    """What the reader asks for: a period (UTC, the last 12 months by default), one
    professional (RPPS), one kind (``KINDS``)."""

    since: datetime | None = None
    until: datetime | None = None
    professional: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the history: ids and codes; the page turns them into words."""

    event_id: str
    time: str  # UTC ISO instant
    action: str  # read, search, create, mask, break-glass, ...
    res_type: str | None
    outcome: int
    actor: str  # account or client id
    actor_kind: str  # professional | person | app | backend | operator | platform
    why: str  # one of KINDS but "refused"
    rpps: str | None = None
    profession: str | None = None
    name: str | None = None
    organisation: str | None = None
    emergency_reason: str | None = None
    items: list[str] = field(default_factory=list)  # Type/id the reader may see
    sealed: bool = False  # in a signed checkpoint with a proof (else: being sealed)

    @property
    def refused(self) -> bool:
        return self.outcome >= 400


CSV_COLUMNS = (
    "date (UTC)",
    "qui",
    "RPPS",
    "profession",
    "organisation",
    "action",
    "type",
    "motif",
    "motif d'urgence",
    "résultat",
    "éléments",
    "événement",
)


class AccessHistory:
    """The patient's access history for the web: entries, CSV, verification, proof files."""

    def __init__(
        self,
        audit: AuditService,
        gate: HistoryGate,
        accounts: AccountDirectory,
        fhir: FhirService,
        *,
        base_url: str = "",
    ) -> None:
        self.audit = audit
        self.gate = gate
        self.accounts = accounts
        self.fhir = fhir
        self.base_url = base_url

    # -- the gate --------------------------------------------------------------------------------

    def _guard(self, ctx: RequestContext, patient_id: str) -> frozenset[str]:
        """The items hidden from the reader; refused readers are audited and told nothing."""
        if not self.gate.may_see_history(ctx.principal, patient_id):
            denied = replace(ctx, rule=HISTORY_RULE)
            self.audit.record_failure(denied, "history-read", "Patient", patient_id, 404)
            raise HistoryUnavailableError(patient_id)
        return self.gate.history_hidden(ctx.principal, patient_id)

    # -- entries ---------------------------------------------------------------------------------

    def entries(
        self, ctx: RequestContext, patient_id: str, wanted: HistoryFilter | None = None
    ) -> list[HistoryEntry]:
        """The reader's view of ``patient_id``'s history, newest first, filtered."""
        wanted = wanted or HistoryFilter()
        hidden = self._guard(ctx, patient_id)
        since = stamp(wanted.since or utc_now() - timedelta(days=31 * HISTORY_MONTHS))
        until = stamp(wanted.until) if wanted.until else None
        logged, sealed_below = self._events(ctx, patient_id, hidden, since)
        entries = self._describe(ctx, patient_id, logged, hidden, sealed_below)
        return [
            e
            for e in entries
            if e.time >= since
            and (until is None or e.time < until)
            and (not wanted.professional or wanted.professional in (e.rpps, e.actor))
            and _of_kind(e, wanted.kind)
        ]

    def page(
        self,
        ctx: RequestContext,
        patient_id: str,
        wanted: HistoryFilter | None,
        number: int,
        per_page: int,
    ) -> tuple[list[HistoryEntry], int]:
        """Page ``number`` (from 1) of ``entries``, and how many entries there are in all. With
        no professional or kind asked (the page as it opens), only the page's own entries are
        described: a busy record's list costs its page, not its year of events."""
        wanted = wanted or HistoryFilter()
        start = (max(1, number) - 1) * per_page
        if wanted.professional or wanted.kind:  # these filter on what describing finds
            every = self.entries(ctx, patient_id, wanted)
            return every[start : start + per_page], len(every)
        hidden = self._guard(ctx, patient_id)
        since = stamp(wanted.since or utc_now() - timedelta(days=31 * HISTORY_MONTHS))
        until = stamp(wanted.until) if wanted.until else None
        logged, sealed_below = self._events(ctx, patient_id, hidden, since)
        bodies = [orjson.loads(e.body) for e in logged]
        in_period = [
            i
            for i, body in enumerate(bodies)
            if str(body.get("time")) >= since and (until is None or str(body.get("time")) < until)
        ]
        chosen = set(in_period[start : start + per_page])
        entries = self._describe(ctx, patient_id, logged, hidden, sealed_below, bodies, chosen)
        return entries, len(in_period)

    def _events(
        self, ctx: RequestContext, patient_id: str, hidden: frozenset[str], since: str
    ) -> tuple[list[LoggedEvent], int]:
        """The events back to ``since`` (newest first) and the size of the signed tree they
        were read against: an event whose leaf is below it is sealed."""
        found: list[LoggedEvent] = []
        sealed_below = 0
        offset = 0
        while len(found) < MAX_EVENTS:
            page = self._page(ctx, patient_id, hidden, offset)
            found.extend(page.events)
            if page.checkpoint is not None:
                sealed_below = max(sealed_below, page.checkpoint.size)
            offset += len(page.events)
            oldest = _time(page.events[-1]) if page.events else ""
            if len(page.events) < PAGE or oldest < since:
                break
        return found, sealed_below

    def _page(
        self, ctx: RequestContext, patient_id: str, hidden: frozenset[str], offset: int
    ) -> HistoryPage:
        # no proofs for the list (they cost a lookup per hash): one entry is proven on demand
        if hidden:
            return visible_history(
                self.audit, patient_id, ctx, hidden, count=PAGE, offset=offset, proofs=False
            )
        return self.audit.patient_history(patient_id, ctx, count=PAGE, offset=offset, proofs=False)

    def _describe(
        self,
        ctx: RequestContext,
        patient_id: str,
        logged: Sequence[LoggedEvent],
        hidden: frozenset[str],
        sealed_below: int,
        bodies: Sequence[dict[str, Any]] | None = None,
        only: set[int] | None = None,
    ) -> list[HistoryEntry]:
        """The entries of ``logged`` (newest first), or of its positions ``only``; the
        emergency reasons still come from every older event."""
        if bodies is None:
            bodies = [orjson.loads(e.body) for e in logged]
        described = range(len(logged)) if only is None else sorted(only)
        actors = {str(bodies[i].get("actor")) for i in described}
        accounts = {a: self.accounts.account(a) for a in actors}
        rpps_of = {a: acc.rpps for a, acc in accounts.items() if acc is not None and acc.rpps}
        names = self._practitioner_names(ctx, sorted(set(rpps_of.values())))
        reasons: dict[str, str] = {}  # the latest emergency reason of each actor, oldest first
        entries: list[HistoryEntry] = []
        for position in range(len(logged) - 1, -1, -1):  # oldest first
            event, body = logged[position], bodies[position]
            actor = str(body.get("actor"))
            rule = str(body.get("rule") or "")
            if body.get("action") == "break-glass" and "reason:" in rule:
                reasons[actor] = rule.split("reason:", 1)[1].split()[0]
            if only is not None and position not in only:
                continue
            account = accounts.get(actor)
            why = _why(body, account, patient_id)
            items = [
                item_of(ref)
                for piece in event.slices
                if shown(piece, hidden)
                for ref in slice_refs(piece)
                if item_of(ref) not in hidden
            ]
            rpps = rpps_of.get(actor)
            entries.append(
                HistoryEntry(
                    event_id=event.event_id,
                    time=str(body.get("time")),
                    action=str(body.get("action")),
                    res_type=body.get("type"),
                    outcome=int(body.get("outcome") or 0),
                    actor=actor,
                    actor_kind=_actor_kind(body),
                    why=why,
                    rpps=rpps,
                    profession=account.profession if account is not None else None,
                    name=names.get(rpps) if rpps else None,
                    organisation=body.get("organisation"),
                    emergency_reason=reasons.get(actor) if why == EMERGENCY else None,
                    items=sorted(set(items)),
                    sealed=event.leaf_index is not None and event.leaf_index < sealed_below,
                )
            )
        entries.reverse()
        return entries

    def _practitioner_names(self, ctx: RequestContext, rpps: list[str]) -> dict[str, str]:
        return practitioner_names(self.fhir, ctx, rpps, self.base_url)

    # -- one entry: verification and proof file -------------------------------------------------

    def _one(
        self, ctx: RequestContext, patient_id: str, event_id: str
    ) -> tuple[LoggedEvent, Any, frozenset[str]]:
        hidden = self._guard(ctx, patient_id)
        try:
            # the log records the reading with what it gave (a refusal when nothing); another
            # record's event, or one naming only hidden items, is as if missing
            return readable_event(
                self.audit, event_id, ctx, self.gate, patient_id=patient_id, hidden=hidden
            )
        except KeyError:
            raise HistoryUnavailableError(event_id) from None

    def verify(self, ctx: RequestContext, patient_id: str, event_id: str) -> InclusionCheck:
        """Check one entry's inclusion proof against the signed checkpoint."""
        logged, checkpoint, _hidden = self._one(ctx, patient_id, event_id)
        return check_inclusion(logged, checkpoint, self.audit.public_key, patient_id)

    def proof(self, ctx: RequestContext, patient_id: str, event_id: str) -> bytes:
        """One entry as an export file (NDJSON) the verifier of docs/audit.md accepts."""
        logged, checkpoint, hidden = self._one(ctx, patient_id, event_id)
        return proof_file(logged, checkpoint, self.audit.public_key, patient_id, hidden)


def practitioner_names(
    fhir: FhirService, ctx: RequestContext, rpps: list[str], base_url: str = ""
) -> dict[str, str]:
    """Professionals' names by RPPS from the shared directory, in one search read as the
    reader (directory resources are readable by every signed-in caller)."""
    if not rpps:
        return {}
    wanted = ",".join(f"{RPPS_SYSTEM}|{n}" for n in rpps[:100])
    try:
        bundle = fhir.search(base_url, "Practitioner", [("identifier", wanted)], ctx=ctx)
    except FhirError:
        return {}
    names: dict[str, str] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        number = next(
            (
                str(i.get("value"))
                for i in resource.get("identifier") or []
                if i.get("system") == RPPS_SYSTEM
            ),
            None,
        )
        if number:
            names[number] = _display_name(resource.get("name") or [])
    return names


def as_csv(entries: Iterable[HistoryEntry]) -> str:
    """The entries as CSV (``;``-separated, as French spreadsheets expect), ids and codes."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow(
            [
                e.time,
                _csv_safe(e.name or e.actor),
                e.rpps or "",
                e.profession or "",
                _csv_safe(e.organisation or ""),
                e.action,
                e.res_type or "",
                e.why,
                e.emergency_reason or "",
                e.outcome,
                " ".join(e.items),
                e.event_id,
            ]
        )
    return out.getvalue()


def _of_kind(entry: HistoryEntry, kind: str | None) -> bool:
    """Whether an entry is of the kind asked for; care includes the médecin traitant's."""
    if not kind:
        return True
    if kind == "refused":
        return entry.refused
    return entry.why == kind or (kind == CARE and entry.why == MEDECIN_TRAITANT)


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _time(event: LoggedEvent) -> str:
    return str(orjson.loads(event.body).get("time"))


def _actor_kind(body: dict[str, Any]) -> str:
    role = str(body.get("role") or "")
    if role.startswith("professional"):
        return "professional"
    return role if role in ("person", "app", "backend", "operator") else "platform"


def _why(body: dict[str, Any], account: AccountLike | None, patient_id: str) -> str:
    rule = str(body.get("rule") or "")
    kind = _actor_kind(body)
    if body.get("purpose") == "emergency" or rule.startswith("break-glass"):
        return EMERGENCY
    if kind == "professional":
        return MEDECIN_TRAITANT if rule.startswith("medecin-traitant") else CARE
    if kind == "person":
        own = account is not None and account.patient_id == patient_id
        return SELF if own else REPRESENTATIVE
    if kind == "app":
        return APP
    return PLATFORM


def _display_name(names: list[dict[str, Any]]) -> str:
    if not names:
        return ""
    name = names[0]
    if name.get("text"):
        return str(name["text"])
    parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
    return " ".join(str(p) for p in parts if p)
