"""Search execution: a parsed query compiled with the caller's visibility, paged (with snapshots
that keep pages stable), widened by _include / _revinclude, and shaped (_summary, _elements).

``Searching`` holds the engine's search configuration; each call runs inside one caller's
``FhirSession``, which decides and records (see carnet/fhir/session.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from carnet.caller import Visibility
from carnet.fhir import render, snapshots
from carnet.fhir.definitions import Definitions
from carnet.fhir.errors import Issue, operation_outcome
from carnet.fhir.query import Compiler
from carnet.fhir.repository import StoredResource, Unit
from carnet.fhir.search import DEFAULT_MAX_TERMS, SearchRequest, parse
from carnet.fhir.shaping import shape
from carnet.fhir.snapshots import SNAPSHOT_MAX

if TYPE_CHECKING:
    from carnet.fhir.session import FhirSession

MAX_INCLUDE_DEPTH = 4  # :iterate rounds
MAX_INCLUDED = 1000  # resources _include may add to one page


class Searching:
    """Parses, pages, includes and shapes searches for the sessions of one engine."""

    def __init__(
        self,
        definitions: Definitions,
        compiler: Compiler,
        *,
        default_page_size: int = 20,
        max_page_size: int = 1000,
        max_search_terms: int = DEFAULT_MAX_TERMS,
    ) -> None:
        self.definitions = definitions
        self.compiler = compiler
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.max_search_terms = max_search_terms

    def parse(self, res_type: str, params: list[tuple[str, str]], *, strict: bool) -> SearchRequest:
        return parse(
            res_type,
            params,
            self.definitions,
            default_count=self.default_page_size,
            max_count=self.max_page_size,
            strict=strict,
            max_terms=self.max_search_terms,
        )

    def run(self, session: FhirSession, base: str, req: SearchRequest) -> dict[str, Any]:
        """The searchset Bundle of ``req`` as ``session``'s caller may see it; recorded."""
        unit, ctx = session.unit, session.ctx
        session.check("search", req.res_type, None)
        vis = session.visibility("search")
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
            keys = self.visible_keys(unit, vis, stored_page.keys)
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
        matches = unit.load(keys, inflate=req.attachment_data)
        included = self.includes(unit, req, matches, vis) if req.includes and matches else []
        told: list[str] = []  # records a total told of beyond the page
        if vis is not None and total is not None and total > len(matches):
            # The total tells of items the page does not hold (a count: has this patient a
            # result with this code?): their records read it, so its event names each of them
            # and it is in their access history. (Callers who see everything count the store.)
            _, records = unit.search_ids(self.compiler.counted_records(ids), None)
            told = [pid for _, pid in records]
        session.record("search", req.res_type, matches + included, counted=told)
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
        shaped = [self.shape(m, req) for m in matches]
        return render.searchset(
            base, total, links, shaped, outcome, [self.shape(i, req) for i in included]
        )

    def shape(self, stored: StoredResource, req: SearchRequest) -> StoredResource:
        if stored.body is None or (req.summary == "false" and not req.elements):
            return stored
        return replace(stored, body=shape(self.definitions, stored.body, req.summary, req.elements))

    def includes(
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
            new_keys = self.visible_keys(unit, vis, new_keys)
            if not new_keys:
                break
            loaded = unit.load(new_keys[:MAX_INCLUDED])
            found.extend(loaded)
            seen.update(new_keys)
            frontier = [(r.res_type, r.res_id) for r in loaded]
        return found

    def visible_keys(
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
        kept = set(self.visible_keys(unit, vis, [(r.res_type, r.res_id) for r in found]))
        return [r for r in found if (r.res_type, r.res_id) in kept]
