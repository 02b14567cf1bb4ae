"""FhirSession: one interaction of one caller, in one unit of work.

``FhirService.session(ctx, action, res_type, res_id)`` opens it; every health-data path (the REST
routes, the operations, transactions, the importer, identity and record) reads and writes through
its methods, so each read is checked with the policy and each interaction recorded in the audit
log, by construction. Places that need the unit itself (a domain's own tables in the same
transaction) take it from the session they run in: ``session.unit``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sqlalchemy import Connection

from carnet.caller import RequestContext, Visibility, may_choose_ids
from carnet.db.ids import time_ordered_id
from carnet.fhir import render
from carnet.fhir.access import PendingEvents
from carnet.fhir.dates import date_range
from carnet.fhir.errors import (
    FhirError,
    Issue,
    bad_request,
    gone,
    not_found,
    precondition_failed,
)
from carnet.fhir.history_query import history_records, history_versions
from carnet.fhir.query import visible, visible_versions
from carnet.fhir.record_checks import ExpectedPatients, moves_record
from carnet.fhir.repository import StoredResource, Unit
from carnet.fhir.search import clamp_int, parse
from carnet.fhir.store_scan import compartment_versions, iter_current
from carnet.fhir.versions import etag_version, same_content, version_number

if TYPE_CHECKING:
    from carnet.fhir.service import FhirService


@dataclass(frozen=True)
class WriteResult:
    stored: StoredResource
    created: bool  # a new resource (201) rather than a new version or an existing match (200)
    held: dict[str, Any] | None = None
    """An OperationOutcome when a deposit hook held the resource (identity quarantine): nothing is
    stored under ``stored``'s id and the API answers 202 Accepted."""


class FhirSession:
    """One caller's interaction: its unit of work, its caller, and the policy's guard over both."""

    def __init__(self, service: FhirService, unit: Unit, ctx: RequestContext) -> None:
        self.service = service
        self.unit = unit
        self.ctx = ctx
        self.guard = service.access.open()
        # The audit events this interaction owes; handed to the audit log (through the guard)
        # inside the unit just before it commits. A refusal or failure rolls them back with the
        # unit and is recorded instead.
        self.pending = PendingEvents()
        unit.before_commit.append(self._hand_over_events)
        # Refusals answered as for a missing item in a unit that goes on (a hidden item's
        # DELETE in a transaction): recorded once the unit has ended.
        self.refused: list[tuple[RequestContext, str, str]] = []
        # Patients the items written must find in place when the unit commits.
        self.expected = ExpectedPatients(service.definitions, unit)

    # -- the policy and the audit log -------------------------------------------------------------

    def check(self, action: str, res_type: str | None, res_id: str | None) -> None:
        """May the caller attempt ``action`` on this type (and item) at all? 403 otherwise; the
        interaction then owes an event naming the rule that allowed it."""
        rule = self.guard.check(self.unit, self.ctx, action, res_type, res_id)
        self.pending.expect(replace(self.ctx, rule=rule), action, res_type, res_id)

    def check_resource(self, action: str, stored: StoredResource) -> None:
        """May the caller do ``action`` on this resource? 403, or 404 for an item hidden from them."""
        self.guard.check_resource(self.unit, self.ctx, action, stored)

    def visibility(self, action: str) -> Visibility | None:
        """What the caller may see, for queries (None: everything)."""
        return self.guard.visibility(self.unit, self.ctx, action)

    def record(
        self,
        action: str,
        res_type: str | None,
        touched: list[StoredResource],
        *,
        ctx: RequestContext | None = None,
        counted: Sequence[str] = (),
    ) -> None:
        """Record the interaction's success (in this unit: it commits with what it records);
        ``ctx`` when the event names another rule than the caller's (a job's own rule);
        ``counted``: the Patients of records whose items a count read without returning them."""
        ctx = ctx or self.ctx
        rule = self.guard.record(self.unit, ctx, action, res_type, touched)
        self.pending.record(replace(ctx, rule=rule), action, res_type, touched, counted)

    def _hand_over_events(self, conn: Connection) -> None:
        if self.pending.events:
            self.guard.commit(conn, self.pending.events)

    # -- steps that check what they do with what they read ---------------------------------------

    def current(self, res_type: str, res_id: str) -> StoredResource | None:
        """The current version, unchecked: for a step that checks what it does with it (a record
        that must exist before the operation on it is checked, a Patient link written as a
        checked update)."""
        return self.unit.current(res_type, res_id)

    def compartment_items(
        self, patient_id: str, keys: list[tuple[str, str]] | None = None
    ) -> list[StoredResource]:
        """The current items of ``keys`` (default: the patient's whole compartment), unchecked:
        for an identity correction that re-points each of them by a checked update."""
        wanted = self.unit.compartment_keys(patient_id) if keys is None else keys
        return self.unit.load(wanted)

    @property
    def local_base(self) -> str | None:
        """This server's FHIR base (``fhir_base_url``): an absolute reference under it is one of
        ours (:func:`carnet.fhir.indexer.is_local_reference`, the rule that places an item in a
        record); for a domain step that rewrites references (an identity merge)."""
        return self.unit.repo.indexer.local_base

    def destroy_patient_key(self, patient_id: str) -> bool:
        """Crypto-shred a record (its space's retention ended), in this interaction."""
        return self.unit.destroy_patient_key(patient_id)

    # -- reads --------------------------------------------------------------------------------------

    def read(self, res_type: str, res_id: str) -> StoredResource:
        """The current version, checked and recorded; 404 when missing or hidden, 410 deleted."""
        self.check("read", res_type, res_id)
        stored = self.unit.current(res_type, res_id)
        if stored is None:
            raise not_found(f"{res_type}/{res_id} is not known")
        self.check_resource("read", stored)
        if stored.deleted:
            raise gone(f"{res_type}/{res_id} was deleted")
        self.record("read", res_type, [stored])
        return stored

    def vread(self, res_type: str, res_id: str, version: str) -> StoredResource:
        number = version_number(version)
        if number is None:
            raise not_found(f"{res_type}/{res_id} has no version '{version[:20]}'")
        self.check("vread", res_type, res_id)
        stored = self.unit.version(res_type, res_id, number)
        missing = f"{res_type}/{res_id} has no version {version}"
        if stored is None:
            raise not_found(missing)
        current = self.unit.current(res_type, res_id)
        try:
            if current is not None and current.patient_id != stored.patient_id:
                # a version from before the item moved record: whoever reads it must also
                # have a right on the record it is in now (an identity correction)
                self.check_resource("vread", current)
            self.check_resource("vread", stored)
        except FhirError as err:
            if err.status != 404:
                raise
            # hidden from this caller: exactly the answer for a version that does not exist
            raise FhirError(404, not_found(missing).issues, rule=err.rule) from None
        if stored.deleted:
            raise gone(f"{res_type}/{res_id} version {version} is a deletion")
        self.record("vread", res_type, [stored])
        return stored

    def history(
        self,
        base: str,
        res_type: str | None,
        res_id: str | None,
        params: list[tuple[str, str]],
    ) -> dict[str, Any]:
        """A history Bundle of the versions the caller may see."""
        service = self.service
        query = dict(params)
        count = min(
            max(0, int_param(query, "_count", service.default_page_size)), service.max_page_size
        )
        offset = max(0, int_param(query, "_offset", 0))
        since = None
        if "_since" in query:
            rng = date_range(query["_since"])
            if rng is None:
                raise bad_request(f"'{query['_since'][:40]}' is not a valid instant", "_since")
            since = rng[0]
        self.check("history", res_type, res_id)
        vis = self.visibility("history")
        seen = visible_versions(vis)
        total, versions = self.unit.history(
            res_type, res_id, since=since, offset=offset, count=count, where=seen
        )
        if res_id and total == 0:
            raise not_found(f"{res_type}/{res_id} is not known")
        told: list[str] = []
        if res_id and res_type and not versions:
            # an empty page (``_count=0``) still tells of the item's versions: name its record
            item = self.unit.current(res_type, res_id)
            told = [item.patient_id] if item is not None and item.patient_id else []
        elif not res_id and vis is not None and total > len(versions):
            # a type's (or the system's) total tells of versions the page does not hold, across
            # records: each record counted read it, so the event names them, as a search's
            # count does (callers who see everything count the store)
            covered = history_versions(res_type, res_id, since=since, where=seen)
            _, records = self.unit.search_ids(history_records(covered), None)
            told = [pid for _, pid in records]
        self.record("history", res_type, versions, counted=told)
        path = "/".join(p for p in (res_type, res_id, "_history") if p)
        keep = [(k, v) for k, v in params if k == "_since"]
        links = render.page_links(base, path, keep, offset, count, total)
        return render.history(base, total, links, versions)

    def search(
        self,
        base: str,
        res_type: str,
        params: list[tuple[str, str]],
        *,
        strict: bool = False,
        attachment_data: bool = True,
    ) -> dict[str, Any]:
        """A searchset Bundle; unknown parameters fail in strict mode and are reported otherwise.
        ``attachment_data=False``: attachments without their data (not read nor decrypted)."""
        self.service.check_type(res_type)
        req = self.service.searching.parse(res_type, params, strict=strict)
        req.attachment_data = attachment_data
        return self.service.searching.run(self, base, req)

    def compartment_search(
        self,
        base: str,
        patient_id: str,
        res_type: str,
        params: list[tuple[str, str]],
        *,
        strict: bool = False,
    ) -> dict[str, Any]:
        """Search inside one patient's compartment: ``Patient/<id>/<type>?...``."""
        self.service.check_type(res_type)
        patient = self.unit.current("Patient", patient_id)
        if patient is None or patient.deleted:
            raise not_found(f"Patient/{patient_id} is not known")
        self.check_resource("read", patient)
        req = self.service.searching.parse(res_type, params, strict=strict)
        req.compartment = patient_id
        return self.service.searching.run(self, base, req)

    def current_batches(
        self, action: str, types: Sequence[str], *, batch: int = 500, inflate: bool = True
    ) -> Iterator[list[StoredResource]]:
        """Every current resource of ``types`` the caller may see, in batches, each batch
        recorded: a system caller's bulk read in one snapshot (a research extraction).
        ``inflate=False`` leaves attachments' data out."""
        self.check(action, None, None)
        vis = self.visibility(action)
        for found in iter_current(self.unit, types, batch=batch, inflate=inflate):
            visible = self.visible_only(vis, found)
            self.record(action, None, visible)
            yield visible

    def visible_only(
        self, vis: Visibility | None, found: list[StoredResource]
    ) -> list[StoredResource]:
        """``found`` without what the caller may not see (for operations that follow references)."""
        return self.service.searching.visible_only(self.unit, vis, found)

    def visible_versions(
        self, patient_id: str, vis: Visibility | None
    ) -> list[tuple[str, str, int]]:
        """(type, id, version) of the current items of one record that ``vis`` lets the caller
        see, nothing decrypted: for a reader that keeps what it derived from each version (the
        in-record search) and loads only the versions it has not seen."""
        return compartment_versions(self.unit, patient_id, visible(vis))

    def load_visible(
        self, vis: Visibility | None, keys: list[tuple[str, str]]
    ) -> list[StoredResource]:
        """The current items of ``keys`` that ``vis`` lets the caller see, decrypted."""
        return self.visible_only(vis, self.unit.load(keys)) if keys else []

    def conditional_match(
        self, res_type: str, query: str, *, among_all: bool = False
    ) -> StoredResource | None:
        """The one resource matching ``query`` among those the caller may see; None if none; 412
        if several. ``among_all``: a step of the unit's own that matches among every resource
        (the register's provisioning looking for a known person)."""
        query = query.split("?", 1)[1] if "?" in query else query
        params = parse_qsl(query, keep_blank_values=True)
        if not params:
            raise bad_request("a conditional request needs search parameters")
        service = self.service
        req = parse(
            res_type,
            params,
            service.definitions,
            default_count=2,
            max_count=2,
            strict=True,
            max_terms=service.max_search_terms,
        )
        req.count = 2
        vis = None if among_all else self.visibility("search")
        ids, _ = service.compiler.compile(req, vis)
        _, keys = self.unit.search_ids(ids, None)
        if len(keys) > 1:
            raise precondition_failed(f"conditional criteria matched {len(keys)} or more resources")
        if not keys:
            return None
        found = self.unit.load(keys)
        return found[0] if found else None

    # -- writes -------------------------------------------------------------------------------------

    def create(
        self,
        res_type: str,
        body: dict[str, Any],
        if_none_exist: str | None = None,
        new_id: str | None = None,
    ) -> WriteResult:
        """Create (``body`` validated by the caller of this method) with a server-assigned id, or
        ``new_id``; ``if_none_exist`` makes it conditional."""
        service = self.service
        service.check_writable(res_type)
        if if_none_exist:
            existing = self.conditional_match(res_type, if_none_exist)
            if existing is not None:
                self.check("read", res_type, existing.res_id)
                self.check_resource("read", existing)
                self.record("read", res_type, [existing])
                return WriteResult(existing, created=False)
        res_id = new_id or time_ordered_id()
        self.check("create", res_type, res_id)
        for body_check in service.body_checks:
            body_check(res_type, body)
        for deposit in service.deposit_hooks if res_type != "Patient" else ():
            taken = deposit(self, res_type, res_id, body)
            if taken is not None:
                return taken
        stored = self.unit.write(
            res_type, res_id, body, method="POST", previous=None, known_new=True
        )
        self.check_resource("create", stored)
        self.expected.add(stored, None)
        if res_type == "Patient":
            for hook in service.patient_hooks:
                hook(self, stored)
        self.record("create", res_type, [stored])
        return WriteResult(stored, created=True)

    def update(
        self,
        res_type: str,
        res_id: str,
        body: dict[str, Any],
        if_match: str | None = None,
        *,
        server_chose_id: bool = False,
        keep_record: bool = False,
        at: str | None = None,
    ) -> WriteResult:
        """Update, or create with the client's id if it is new (create-on-update, system
        callers only). ``server_chose_id``: the id was minted here (a conditional update that
        matched nothing), so creating under it is a plain create for any caller.
        ``keep_record``: an item in a patient's record stays in it (the importer: 409 otherwise,
        ``at`` locating the body in the refusal, ``Bundle.entry[3].resource``)."""
        service = self.service
        service.check_writable(res_type)
        if body.get("id") != res_id:
            raise bad_request(
                f"resource id '{str(body.get('id'))[:64]}' does not match the URL id '{res_id}'",
                "id",
            )
        previous = self.unit.current(res_type, res_id)
        # Update as create is for system callers: for others a free id and one taken by an item
        # hidden from them answer alike (405), so a PUT cannot tell whether a hidden item exists.
        chooses_id = server_chose_id or may_choose_ids(self.ctx.principal)
        action = "create" if previous is None and chooses_id else "update"
        self.check(action, res_type, res_id)
        if previous is None and not chooses_id:
            raise _no_client_id(res_type, res_id, "client-chosen-id")
        if previous is not None:
            try:
                self.check_resource("update", previous)
            except FhirError as err:
                if err.status != 404:
                    raise
                raise _no_client_id(res_type, res_id, err.rule) from None
        if if_match is not None:
            expected = etag_version(if_match)
            if previous is None or previous.version != expected:
                have = "none" if previous is None else str(previous.version)
                raise precondition_failed(
                    f"If-Match version {expected} does not match current version {have}"
                )
        if previous is not None and not previous.deleted and same_content(previous.body, body):
            # As HAPI does: an update that changes nothing makes no new version (re-imports are no-ops).
            self.record("update", res_type, [previous])
            return WriteResult(previous, created=False)
        for body_check in service.body_checks:
            body_check(res_type, body)
        stored = self.unit.write(res_type, res_id, body, method="PUT", previous=previous)
        if (
            keep_record
            and previous is not None
            and previous.patient_id not in (None, stored.patient_id)
        ):
            raise moves_record(self.service.definitions, stored, at or res_type)
        self.check_resource(action, stored)
        self.expected.add(stored, previous)
        if res_type == "Patient":
            for hook in service.patient_hooks:
                hook(self, stored)
        self.record(action, res_type, [stored])
        return WriteResult(stored, created=previous is None or previous.deleted)

    def delete(
        self, res_type: str, res_id: str, *, hidden_as_missing: bool = True
    ) -> StoredResource | None:
        """Logical delete: a new version marked deleted; None if there was nothing to delete.
        An item hidden from the caller is treated as missing (the entry succeeds, nothing is
        deleted) and its refusal recorded when the unit ends, unless ``hidden_as_missing`` is
        False (a plain DELETE: the refusal fails the interaction)."""
        self.service.check_writable(res_type)
        self.check("delete", res_type, res_id)
        previous = self.unit.current(res_type, res_id)
        if previous is None or previous.deleted:
            return None  # deleting what is not there succeeds and changes nothing (idempotent)
        try:
            self.check_resource("delete", previous)
        except FhirError as err:
            if err.status != 404 or not hidden_as_missing:
                raise
            refused = replace(self.ctx, rule=err.rule) if err.rule else self.ctx
            self.refused.append((refused, res_type, res_id))
            # the entry's own event (the 204 answered) names nothing: no deletion of this
            # item may appear in its patient's access history
            self.record("delete", res_type, [], ctx=refused)
            return None
        stored = self.unit.write(res_type, res_id, None, method="DELETE", previous=previous)
        self.record("delete", res_type, [stored])
        return stored


def int_param(query: dict[str, str], name: str, default: int) -> int:
    """An integer query parameter (_count, _offset), its default when absent; 400 otherwise."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return clamp_int(int(raw))
    except ValueError:
        raise bad_request(f"{name} must be an integer, got '{raw[:20]}'", name) from None


def _no_client_id(res_type: str, res_id: str, rule: str | None) -> FhirError:
    """The answer to a PUT on an id the caller may not create: the same for a free id and for
    one taken by an item hidden from them (FHIR's 405 for a server without client ids)."""
    what = f"{res_type}/{res_id} is not known, and resources are created here with POST"
    return FhirError(405, [Issue("not-supported", what)], rule=rule)
