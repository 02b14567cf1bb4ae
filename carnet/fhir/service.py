"""FhirService: the public interface of the FHIR engine (create, read, update, delete, history,
search, transactions). Routers, the CLI and other domains call it; it calls the repository."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from carnet.caller import RequestContext, Visibility, may_choose_ids
from carnet.db.engine import is_lock_timeout
from carnet.db.ids import time_ordered_id
from carnet.fhir import render, snapshots
from carnet.fhir.access import AccessHook, OpenAccess
from carnet.fhir.dates import date_range
from carnet.fhir.definitions import Definitions
from carnet.fhir.errors import (
    FhirError,
    Issue,
    bad_request,
    gone,
    lock_timeout_error,
    not_found,
    operation_outcome,
    precondition_failed,
)
from carnet.fhir.query import Compiler, visible_versions
from carnet.fhir.repository import Repository, StoredResource, Unit
from carnet.fhir.search import DEFAULT_MAX_TERMS, SearchRequest, clamp_int, parse
from carnet.fhir.shaping import shape
from carnet.fhir.snapshots import SNAPSHOT_MAX
from carnet.fhir.validation import Validator, check_id
from carnet.fhir.versions import etag_version, same_content, version_number

log = logging.getLogger("carnet.fhir")

MAX_INCLUDE_DEPTH = 4  # :iterate rounds
MAX_INCLUDED = 1000  # resources _include may add to one page


@dataclass(frozen=True)
class WriteResult:
    stored: StoredResource
    created: bool  # a new resource (201) rather than a new version or an existing match (200)
    held: dict[str, Any] | None = None
    """An OperationOutcome when a deposit hook held the resource (identity quarantine): nothing is
    stored under ``stored``'s id and the API answers 202 Accepted."""


class FhirService:
    """Every FHIR interaction, each in one transaction, each checked and recorded by ``access``."""

    def __init__(
        self,
        repository: Repository,
        definitions: Definitions,
        validator: Validator,
        compiler: Compiler,
        *,
        default_page_size: int = 20,
        max_page_size: int = 1000,
        max_search_terms: int = DEFAULT_MAX_TERMS,
        access: AccessHook | None = None,
    ) -> None:
        self.repo = repository
        self.definitions = definitions
        self.validator = validator
        self.compiler = compiler
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.max_search_terms = max_search_terms
        self.access: AccessHook = access or OpenAccess()
        self.patient_hooks: list[Callable[[Unit, RequestContext, StoredResource], None]] = []
        """Called after a Patient is created or updated, in the same unit (identity matching)."""
        self.deposit_hooks: list[
            Callable[[Unit, RequestContext, str, str, dict[str, Any]], WriteResult | None]
        ] = []
        """Called before any other resource is created, in the same unit, with its type, id and
        body; a hook may take the write over (a document whose Patient is given by identifier or
        contained goes through identity matching: attached, or held in quarantine)."""
        self.body_checks: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with the type and body of every create and update before anything is written;
        a check refuses by raising a FhirError (a broken INS anywhere in the body: 422)."""
        # Refusals answered as for a missing item in a unit that goes on (a hidden item's
        # DELETE in a transaction): recorded once the unit has ended.
        self._refused: weakref.WeakKeyDictionary[Unit, list[tuple[RequestContext, str, str]]] = (
            weakref.WeakKeyDictionary()
        )

    @contextmanager
    def interaction(
        self, ctx: RequestContext, action: str, res_type: str | None, res_id: str | None
    ) -> Iterator[Unit]:
        """One interaction in one transaction; a failure is recorded after its rollback."""
        unit: Unit | None = None
        try:
            with self.repo.unit() as unit:
                yield unit
        except FhirError as err:
            failed = replace(ctx, rule=err.rule) if err.rule else ctx
            self.access.record_failure(failed, action, res_type, res_id, err.status, unit)
            raise
        except Exception as exc:
            if not is_lock_timeout(exc):  # (PostgreSQL's COPY raises the driver's own error)
                self.access.record_failure(
                    ctx, action, res_type, res_id, 500, unit
                )  # audited alike
                raise
            try:  # the lock may still be held: the refusal is then logged (ids only) instead
                self.access.record_failure(ctx, action, res_type, res_id, 503, unit)
            except Exception as again:
                if not is_lock_timeout(again):
                    raise
                log.error("busy %s on %s/%s: lock held, not audited", action, res_type, res_id)
            raise lock_timeout_error() from None
        finally:
            for refused, refused_type, refused_id in self._refused.pop(unit, []) if unit else []:
                self.access.record_failure(refused, "delete", refused_type, refused_id, 404, unit)

    # -- checks -----------------------------------------------------------------------------------

    def check_type(self, res_type: str) -> None:
        if res_type not in self.definitions.resource_types:
            raise not_found(f"unknown resource type '{res_type}'")

    @staticmethod
    def check_writable(res_type: str) -> None:
        """AuditEvents come from the audit log only, by any path (REST, transaction, import)."""
        if res_type == "AuditEvent":
            raise FhirError.of(405, "not-supported", "AuditEvent is written by the audit log only")

    # -- single interactions ------------------------------------------------------------------------

    def create(
        self,
        res_type: str,
        body: Any,
        *,
        if_none_exist: str | None = None,
        ctx: RequestContext,
    ) -> WriteResult:
        """Create with a server-assigned id; ``if_none_exist`` makes it conditional."""
        with self.interaction(ctx, "create", res_type, None) as unit:
            self.check_type(res_type)
            self.validator.validate(body, res_type)
            return self.create_in(unit, ctx, res_type, body, if_none_exist)

    def create_in(
        self,
        unit: Unit,
        ctx: RequestContext,
        res_type: str,
        body: dict[str, Any],
        if_none_exist: str | None,
        new_id: str | None = None,
    ) -> WriteResult:
        self.check_writable(res_type)
        if if_none_exist:
            existing = self.conditional_match(unit, res_type, if_none_exist, ctx)
            if existing is not None:
                self.access.check(unit, ctx, "read", res_type, existing.res_id)
                self.access.check_resource(unit, ctx, "read", existing)
                self.access.record(unit, ctx, "read", res_type, [existing])
                return WriteResult(existing, created=False)
        res_id = new_id or time_ordered_id()
        self.access.check(unit, ctx, "create", res_type, res_id)
        for body_check in self.body_checks:
            body_check(res_type, body)
        for deposit in self.deposit_hooks if res_type != "Patient" else ():
            taken = deposit(unit, ctx, res_type, res_id, body)
            if taken is not None:
                return taken
        stored = unit.write(res_type, res_id, body, method="POST", previous=None, known_new=True)
        self.access.check_resource(unit, ctx, "create", stored)
        if res_type == "Patient":
            for hook in self.patient_hooks:
                hook(unit, ctx, stored)
        self.access.record(unit, ctx, "create", res_type, [stored])
        return WriteResult(stored, created=True)

    def conditional_match(
        self, unit: Unit, res_type: str, query: str, ctx: RequestContext | None
    ) -> StoredResource | None:
        """The one resource matching ``query`` among those ``ctx`` may see; None if none; 412 if
        several. ``ctx`` None, given explicitly, is a step of the unit's own that matches among
        every resource (the register's provisioning looking for a known person)."""
        query = query.split("?", 1)[1] if "?" in query else query
        params = parse_qsl(query, keep_blank_values=True)
        if not params:
            raise bad_request("a conditional request needs search parameters")
        req = parse(
            res_type,
            params,
            self.definitions,
            default_count=2,
            max_count=2,
            strict=True,
            max_terms=self.max_search_terms,
        )
        req.count = 2
        vis = self.access.visibility(unit, ctx, "search") if ctx is not None else None
        ids, _ = self.compiler.compile(req, vis)
        _, keys = unit.search_ids(ids, None)
        if len(keys) > 1:
            raise precondition_failed(f"conditional criteria matched {len(keys)} or more resources")
        if not keys:
            return None
        found = unit.load(keys)
        return found[0] if found else None

    def read(self, res_type: str, res_id: str, *, ctx: RequestContext) -> StoredResource:
        with self.interaction(ctx, "read", res_type, res_id) as unit:
            self.check_type(res_type)
            self.access.check(unit, ctx, "read", res_type, res_id)
            stored = unit.current(res_type, res_id)
            if stored is None:
                raise not_found(f"{res_type}/{res_id} is not known")
            self.access.check_resource(unit, ctx, "read", stored)
            if stored.deleted:
                raise gone(f"{res_type}/{res_id} was deleted")
            self.access.record(unit, ctx, "read", res_type, [stored])
        return stored

    def vread(
        self, res_type: str, res_id: str, version: str, *, ctx: RequestContext
    ) -> StoredResource:
        with self.interaction(ctx, "vread", res_type, res_id) as unit:
            self.check_type(res_type)
            number = version_number(version)
            if number is None:
                raise not_found(f"{res_type}/{res_id} has no version '{version[:20]}'")
            self.access.check(unit, ctx, "vread", res_type, res_id)
            stored = unit.version(res_type, res_id, number)
            missing = f"{res_type}/{res_id} has no version {version}"
            if stored is None:
                raise not_found(missing)
            current = unit.current(res_type, res_id)
            try:
                if current is not None and current.patient_id != stored.patient_id:
                    # a version from before the item moved record: whoever reads it must also
                    # have a right on the record it is in now (an identity correction)
                    self.access.check_resource(unit, ctx, "vread", current)
                self.access.check_resource(unit, ctx, "vread", stored)
            except FhirError as err:
                if err.status != 404:
                    raise
                # hidden from this caller: exactly the answer for a version that does not exist
                raise FhirError(404, not_found(missing).issues, rule=err.rule) from None
            if stored.deleted:
                raise gone(f"{res_type}/{res_id} version {version} is a deletion")
            self.access.record(unit, ctx, "vread", res_type, [stored])
        return stored

    def update(
        self,
        res_type: str,
        res_id: str,
        body: Any,
        *,
        if_match: str | None = None,
        ctx: RequestContext,
    ) -> WriteResult:
        """Update, or create with the client's id if it is new (create-on-update)."""
        with self.interaction(ctx, "update", res_type, res_id) as unit:
            self.check_type(res_type)
            check_id(res_id)
            self.validator.validate(body, res_type)
            return self.update_in(unit, ctx, res_type, res_id, body, if_match)

    def update_in(
        self,
        unit: Unit,
        ctx: RequestContext,
        res_type: str,
        res_id: str,
        body: dict[str, Any],
        if_match: str | None,
        *,
        server_chose_id: bool = False,
    ) -> WriteResult:
        """Update in an open unit. ``server_chose_id``: the id was minted here (a conditional
        update that matched nothing), so creating under it is a plain create for any caller."""
        self.check_writable(res_type)
        if body.get("id") != res_id:
            raise bad_request(
                f"resource id '{str(body.get('id'))[:64]}' does not match the URL id '{res_id}'",
                "id",
            )
        previous = unit.current(res_type, res_id)
        # Update as create is for system callers: for others a free id and one taken by an item
        # hidden from them answer alike (405), so a PUT cannot tell whether a hidden item exists.
        chooses_id = server_chose_id or may_choose_ids(ctx.principal)
        action = "create" if previous is None and chooses_id else "update"
        self.access.check(unit, ctx, action, res_type, res_id)
        if previous is None and not chooses_id:
            raise _no_client_id(res_type, res_id, "client-chosen-id")
        if previous is not None:
            try:
                self.access.check_resource(unit, ctx, "update", previous)
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
            self.access.record(unit, ctx, "update", res_type, [previous])
            return WriteResult(previous, created=False)
        for body_check in self.body_checks:
            body_check(res_type, body)
        stored = unit.write(res_type, res_id, body, method="PUT", previous=previous)
        self.access.check_resource(unit, ctx, action, stored)
        if res_type == "Patient":
            for hook in self.patient_hooks:
                hook(unit, ctx, stored)
        self.access.record(unit, ctx, action, res_type, [stored])
        return WriteResult(stored, created=previous is None or previous.deleted)

    def delete(self, res_type: str, res_id: str, *, ctx: RequestContext) -> StoredResource | None:
        """Logical delete: a new version marked deleted. None if there was nothing to delete."""
        with self.interaction(ctx, "delete", res_type, res_id) as unit:
            self.check_type(res_type)
            # the refusal fails this interaction (audited with its rule); the API answers 204
            return self.delete_in(unit, ctx, res_type, res_id, hidden_as_missing=False)

    def delete_in(
        self,
        unit: Unit,
        ctx: RequestContext,
        res_type: str,
        res_id: str,
        *,
        hidden_as_missing: bool = True,
    ) -> StoredResource | None:
        """Delete in an open unit; an item hidden from the caller is treated as missing (the
        entry succeeds, nothing is deleted) and its refusal recorded when the unit ends."""
        self.check_writable(res_type)
        self.access.check(unit, ctx, "delete", res_type, res_id)
        previous = unit.current(res_type, res_id)
        if previous is None or previous.deleted:
            return None  # deleting what is not there succeeds and changes nothing (idempotent)
        try:
            self.access.check_resource(unit, ctx, "delete", previous)
        except FhirError as err:
            if err.status != 404 or not hidden_as_missing:
                raise
            refused = replace(ctx, rule=err.rule) if err.rule else ctx
            self._refused.setdefault(unit, []).append((refused, res_type, res_id))
            # the entry's own event (the 204 answered) names nothing: no deletion of this
            # item may appear in its patient's access history
            self.access.record(unit, refused, "delete", res_type, [])
            return None
        stored = unit.write(res_type, res_id, None, method="DELETE", previous=previous)
        self.access.record(unit, ctx, "delete", res_type, [stored])
        return stored

    # -- history and search -------------------------------------------------------------------------

    def history(
        self,
        base: str,
        res_type: str | None,
        res_id: str | None,
        params: list[tuple[str, str]],
        *,
        ctx: RequestContext,
    ) -> dict[str, Any]:
        with self.interaction(ctx, "history", res_type, res_id) as unit:
            if res_type:
                self.check_type(res_type)
            query = dict(params)
            count = min(
                max(0, int_param(query, "_count", self.default_page_size)), self.max_page_size
            )
            offset = max(0, int_param(query, "_offset", 0))
            since = None
            if "_since" in query:
                rng = date_range(query["_since"])
                if rng is None:
                    raise bad_request(f"'{query['_since'][:40]}' is not a valid instant", "_since")
                since = rng[0]
            self.access.check(unit, ctx, "history", res_type, res_id)
            vis = self.access.visibility(unit, ctx, "history")
            total, versions = unit.history(
                res_type,
                res_id,
                since=since,
                offset=offset,
                count=count,
                where=visible_versions(vis),
            )
            if res_id and total == 0:
                raise not_found(f"{res_type}/{res_id} is not known")
            self.access.record(unit, ctx, "history", res_type, versions)
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
        ctx: RequestContext,
    ) -> dict[str, Any]:
        """A searchset Bundle; unknown parameters fail in strict mode and are reported otherwise."""
        with self.interaction(ctx, "search", res_type, None) as unit:
            self.check_type(res_type)
            req = self._parse(res_type, params, strict=strict)
            return self._search(unit, ctx, base, req)

    def search_in(
        self,
        unit: Unit,
        ctx: RequestContext,
        base: str,
        res_type: str,
        params: list[tuple[str, str]],
    ) -> dict[str, Any]:
        """Search inside an open unit (a GET entry of a batch or transaction)."""
        self.check_type(res_type)
        req = self._parse(res_type, params, strict=False)
        return self._search(unit, ctx, base, req)

    def _parse(
        self, res_type: str, params: list[tuple[str, str]], *, strict: bool
    ) -> SearchRequest:
        return parse(
            res_type,
            params,
            self.definitions,
            default_count=self.default_page_size,
            max_count=self.max_page_size,
            strict=strict,
            max_terms=self.max_search_terms,
        )

    def _search(
        self, unit: Unit, ctx: RequestContext, base: str, req: SearchRequest
    ) -> dict[str, Any]:
        self.access.check(unit, ctx, "search", req.res_type, None)
        vis = self.access.visibility(unit, ctx, "search")
        ids, count = self.compiler.compile(req, vis)
        counted = None if req.total == "none" else count
        snapshot = req.snapshot
        extent = None  # how far paging links reach, when a snapshot holds more than the total
        if req.summary_count:
            total, keys = unit.search_ids(ids.limit(0), count)
        elif snapshot is not None:
            # A snapshot holds ids only, bound to this caller, type and query: what the caller
            # may see now is decided again (a block or a mask since the first page applies).
            binding = snapshots.binding_of(self.compiler.blind, ctx.principal, req)
            stored_page = snapshots.page(unit, snapshot, binding, req.offset, req.count)
            total, _ = unit.search_ids(ids.limit(0), counted)
            keys = self._visible_keys(unit, vis, stored_page.keys)
            extent = stored_page.size
        elif req.offset == 0:
            # The first page of a longer result keeps the ordered ids of (up to) SNAPSHOT_MAX
            # matches, and next/previous links read them: paging then neither skips nor
            # repeats resources when data changes between pages.
            _, window = unit.search_ids(ids.offset(0).limit(SNAPSHOT_MAX), None)
            if counted is None:
                total = None
            elif len(window) < SNAPSHOT_MAX:
                total = len(window)  # the window holds every match: no COUNT query
            else:
                total = unit.count(counted)
            keys = window[: req.count]
            if len(window) > req.count:
                binding = snapshots.binding_of(self.compiler.blind, ctx.principal, req)
                snapshot = snapshots.store(unit, window, binding)
        else:
            total, keys = unit.search_ids(ids, counted)
        matches = unit.load(keys)
        included = self._includes(unit, req, matches, vis) if req.includes and matches else []
        self.access.record(unit, ctx, "search", req.res_type, matches + included)
        outcome = None
        if req.ignored:
            outcome = operation_outcome(
                [
                    Issue(
                        "not-supported",
                        f"parameter '{name}' is not supported and was ignored",
                        severity="warning",
                    )
                    for name in req.ignored
                ]
            )
        page = 0 if req.summary_count else req.count  # a count has no next page
        path = (
            req.res_type if req.compartment is None else f"Patient/{req.compartment}/{req.res_type}"
        )
        used = req.used + ([("_snapshot", snapshot)] if snapshot else [])
        reach = total if total is None or extent is None else max(total, extent)
        links = render.page_links(base, path, used, req.offset, page, reach)
        shaped = [self._shape(m, req) for m in matches]
        return render.searchset(
            base, total, links, shaped, outcome, [self._shape(i, req) for i in included]
        )

    def _shape(self, stored: StoredResource, req: SearchRequest) -> StoredResource:
        if stored.body is None or (req.summary == "false" and not req.elements):
            return stored
        return replace(stored, body=shape(self.definitions, stored.body, req.summary, req.elements))

    def _includes(
        self,
        unit: Unit,
        req: SearchRequest,
        matches: list[StoredResource],
        vis: Visibility | None,
    ) -> list[StoredResource]:
        """Resources that _include / _revinclude add (iterating while :iterate finds new ones)."""
        seen = {(m.res_type, m.res_id) for m in matches}
        frontier = list(seen)
        found: list[StoredResource] = []
        rounds = [req.includes] + [[i for i in req.includes if i.iterate]] * (MAX_INCLUDE_DEPTH - 1)
        for includes in rounds:
            new_keys: list[tuple[str, str]] = []
            for inc in includes:
                query = self.compiler.include(inc, frontier)
                if query is None:
                    continue
                _, pairs = unit.search_ids(query, None)
                new_keys.extend(p for p in pairs if p not in seen and p not in new_keys)
            new_keys = self._visible_keys(unit, vis, new_keys)
            if not new_keys:
                break
            loaded = unit.load(new_keys[:MAX_INCLUDED])
            found.extend(loaded)
            seen.update(new_keys)
            frontier = [(r.res_type, r.res_id) for r in loaded]
        return found

    def _visible_keys(
        self, unit: Unit, vis: Visibility | None, keys: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """``keys`` without those the caller may not see, in their order."""
        keep = self.compiler.keep_visible(keys, vis) if keys else None
        if keep is None:
            return keys
        _, allowed = unit.search_ids(keep, None)
        visible_keys = set(allowed)
        return [k for k in keys if k in visible_keys]

    def visible_only(
        self, unit: Unit, vis: Visibility | None, found: list[StoredResource]
    ) -> list[StoredResource]:
        """``found`` without what the caller may not see (for operations that follow references)."""
        kept = set(self._visible_keys(unit, vis, [(r.res_type, r.res_id) for r in found]))
        return [r for r in found if (r.res_type, r.res_id) in kept]

    def compartment_search(
        self,
        base: str,
        patient_id: str,
        res_type: str,
        params: list[tuple[str, str]],
        *,
        strict: bool = False,
        ctx: RequestContext,
    ) -> dict[str, Any]:
        """Search inside one patient's compartment: ``Patient/<id>/<type>?...``."""
        with self.interaction(ctx, "search", res_type, None) as unit:
            self.check_type(res_type)
            patient = unit.current("Patient", patient_id)
            if patient is None or patient.deleted:
                raise not_found(f"Patient/{patient_id} is not known")
            self.access.check_resource(unit, ctx, "read", patient)
            req = self._parse(res_type, params, strict=strict)
            req.compartment = patient_id
            return self._search(unit, ctx, base, req)


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
