"""The query compiler: a SearchRequest becomes SQL over the index tables.

It only builds statements; carnet.fhir.repository runs them. Each criterion is ``res_id IN
(ids of this type matching it)``, so parameters AND together and comma-separated values OR
together, as the specification says. Chains and ``_has`` nest the same construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
)

from carnet.caller import Visibility
from carnet.crypto.blind_index import GRAM, BlindIndexer, normalise
from carnet.fhir.dates import date_range
from carnet.fhir.definitions import Definitions, SearchParam
from carnet.fhir.errors import bad_request, not_found
from carnet.fhir.indexer import CONTAINS, IDENTIFIER, TEXT, composite_key
from carnet.fhir.models import (
    INDEX_TABLES,
    code_text,
    idx_reference,
    idx_string,
    idx_token,
    resource,
)
from carnet.fhir.search import Include, SearchRequest, Term
from carnet.fhir.search_values import (
    range_condition,
    split_escaped,
    split_prefix,
    token_condition,
    token_parts,
    unescape,
    value_condition,
)


class Compiler:
    """Builds the SELECT of matching (type, id) pairs, its COUNT, and _include queries."""

    SUPPORTED_PARAM_TYPES = tuple(INDEX_TABLES)

    def __init__(self, definitions: Definitions, blind: BlindIndexer) -> None:
        self.definitions = definitions
        self.blind = blind

    # -- the page and its total ----------------------------------------------------------------

    def compile(
        self, req: SearchRequest, vis: Visibility | None = None
    ) -> tuple[Select[Any], Select[Any]]:
        """The page query and the count query, restricted to what ``vis`` lets the caller see.

        The most selective criterion (a patient reference or an id rather than a status code)
        drives the query: its matching ids are joined to the resource rows, and the others filter
        them. Scanning every current row of the type and testing each one is what made searches
        slow on a large store.
        """
        positives: list[tuple[int, Select[Any]]] = []
        conds = self._current(req.res_type)
        seen = visible(vis)
        if seen is not None:
            conds.append(seen)
        owners_only = True  # every criterion selects the owners of index rows
        for term, values in req.criteria:
            if term.modifier == "not" or (term.modifier == "missing" and values == ["true"]):
                conds.append(not_(resource.c.res_id.in_(self._positive(term, values, vis))))
                owners_only = False
            else:
                positives.append((_selectivity(term), self.ids(term, values, vis)))
                owners_only = owners_only and term.param is not None and term.code != "_has"
        if req.compartment is not None:
            positives.append((1, self._compartment_ids(req.res_type, req.compartment)))
        positives.sort(key=lambda item: item[0])
        source: Any = resource
        total: Select[Any] | None = None
        if positives:
            first = positives[0][1]
            # A UNION (``:text``, ``:contains`` with several values) is distinct already.
            driver = (first.distinct() if isinstance(first, Select) else first).subquery("driver")
            source = driver.join(resource, resource.c.res_id == driver.c.res_id)
            if seen is None and owners_only and len(positives) == 1 and not req.compartment:
                # Index rows exist only for current, undeleted versions (Unit.flush replaces
                # them, a deletion and a key destruction remove them), so for a caller who sees
                # everything the owners of one criterion's rows are the matches: counted from
                # the (covering) index alone, not one resource row per match.
                total = select(func.count()).select_from(driver)
            # The others are checked per driven row through the (res_type, res_id) index.
            conds.extend(_correlated(query) for _, query in positives[1:])
        where = and_(*conds)
        ids = select(resource.c.res_type, resource.c.res_id).select_from(source).where(where)
        known = self.definitions.params_for(req.res_type)
        for code, desc in req.sort or [("_lastUpdated", False)]:
            key = self._sort_key(req.res_type, known, code, desc)
            # Resources without the value last either way, on every backend (SQLite's default
            # puts NULLs first, PostgreSQL's last ascending and first descending).
            ids = ids.order_by((key.desc() if desc else key.asc()).nulls_last())
        ids = ids.order_by(resource.c.res_id).offset(req.offset).limit(req.count)
        if total is None:
            total = select(func.count()).select_from(source).where(where)
        return ids, total

    @staticmethod
    def counted_records(ids: Select[Any]) -> Select[Any]:
        """("Patient", id) of each record holding an item ``ids`` matches, paging left out: what
        a count read of the records it counted (for its audit event)."""
        matched = ids.order_by(None).limit(None).offset(None).subquery("counted")
        records = resource.alias("records")
        return (
            select(literal("Patient"), records.c.patient_id)
            .where(
                records.c.res_type == matched.c.res_type,
                records.c.res_id == matched.c.res_id,
                records.c.current,
                records.c.patient_id.is_not(None),
            )
            .distinct()
        )

    @staticmethod
    def _current(res_type: str) -> list[ColumnElement[bool]]:
        return [
            resource.c.res_type == res_type,
            resource.c.current,
            resource.c.deleted.is_(False),
        ]

    def _compartment_ids(self, res_type: str, patient_id: str) -> Select[Any]:
        if res_type == "Patient":
            return select(resource.c.res_id).where(
                *self._current("Patient"), resource.c.res_id == patient_id
            )
        codes = self.definitions.compartment.get(res_type)
        if not codes:
            raise not_found(f"{res_type} is not in the Patient compartment")
        r = idx_reference.c
        return select(r.res_id).where(
            r.res_type == res_type,
            r.param.in_(codes),
            r.target_type == "Patient",
            r.target_id == patient_id,
        )

    # -- ids of one type matching one term -------------------------------------------------------

    def ids(self, term: Term, values: list[str], vis: Visibility | None = None) -> Select[Any]:
        """SELECT res_id of ``term.res_type`` resources matching any of ``values``."""
        if term.modifier == "not" or (term.modifier == "missing" and values == ["true"]):
            return select(resource.c.res_id).where(
                *self._current(term.res_type),
                not_(resource.c.res_id.in_(self._positive(term, values, vis))),
            )
        return self._positive(term, values, vis)

    def visible_ids(self, res_type: str, vis: Visibility | None) -> Select[Any] | None:
        """Ids of the ``res_type`` resources the caller may see; None when they see them all."""
        seen = visible(vis)
        if seen is None:
            return None
        return select(resource.c.res_id).where(*self._current(res_type), seen)

    def _positive(self, term: Term, values: list[str], vis: Visibility | None) -> Select[Any]:
        if term.code == "_id":
            return select(resource.c.res_id).where(
                *self._current(term.res_type), resource.c.res_id.in_(values)
            )
        if term.code == "_lastUpdated":
            col = resource.c.last_updated
            return select(resource.c.res_id).where(
                *self._current(term.res_type),
                or_(*(_instant_condition(col, v) for v in values)),
            )
        if term.code == "_has":
            assert term.has_inner is not None
            r = idx_reference.c
            # A hidden resource must not select what refers to it, nor be selected through it.
            query = select(r.target_id.label("res_id")).where(
                r.res_type == term.has_type,
                r.param == term.has_reference,
                r.target_type == term.res_type,
                r.res_id.in_(self.ids(term.has_inner, values, vis)),
            )
            seen_has = self.visible_ids(term.has_type or "", vis)
            return query if seen_has is None else query.where(r.res_id.in_(seen_has))
        param = term.param
        assert param is not None
        if term.chain:
            r = idx_reference.c
            branches = []
            for target, inner in term.chain:
                branch = and_(
                    r.target_type == target, r.target_id.in_(self.ids(inner, values, vis))
                )
                seen_target = self.visible_ids(target, vis)
                if seen_target is not None:
                    branch = and_(branch, r.target_id.in_(seen_target))
                branches.append(branch)
            return select(r.res_id).where(
                r.res_type == term.res_type, r.param == param.code, or_(*branches)
            )
        return self._plain(term.res_type, param, term.modifier, values)

    def _plain(
        self, res_type: str, param: SearchParam, modifier: str, values: list[str]
    ) -> Select[Any]:
        if modifier == "missing":
            if values not in (["true"], ["false"]):
                raise bad_request(f"{param.code}:missing takes true or false", param.code)
            table = INDEX_TABLES[param.type]
            return select(table.c.res_id).where(
                table.c.res_type == res_type, table.c.param == param.code
            )
        if modifier == "contains":
            return self._contains(res_type, param, values)
        if param.type == "composite":
            return self._composite(res_type, param, values)
        if modifier == "text":
            s, t, ct = idx_string.c, idx_token.c, code_text.c
            digests = [self.blind.prefix_query(unescape(v)) for v in values]
            codes = select(ct.system, ct.code).where(ct.value.in_(digests))
            via_codes = select(t.res_id).where(
                t.res_type == res_type,
                t.param == param.code,
                tuple_(func.coalesce(t.system, ""), t.code).in_(codes),
            )
            free_text = select(s.res_id).where(
                s.res_type == res_type, s.param == f"{param.code}{TEXT}", s.value.in_(digests)
            )
            return via_codes.union(free_text)  # type: ignore[return-value]
        if modifier == "identifier":
            t = idx_token.c
            return select(t.res_id).where(
                t.res_type == res_type,
                t.param == f"{param.code}{IDENTIFIER}",
                or_(*(token_condition(t, v, self.blind) for v in values)),
            )
        table = INDEX_TABLES[param.type]
        ors = [value_condition(table, param, modifier, v, self.blind) for v in values]
        return select(table.c.res_id).where(
            table.c.res_type == res_type, table.c.param == param.code, or_(*ors)
        )

    def _composite(self, res_type: str, param: SearchParam, values: list[str]) -> Select[Any]:
        (_, _), (second_type, second_paths) = param.components
        table = INDEX_TABLES[second_type]
        second = SearchParam(param.code, second_type, param.url, param.expression, second_paths)
        ors = []
        for value in values:
            parts = split_escaped(value, "$")
            if len(parts) != 2:
                raise bad_request(f"{param.code} takes code$value, got '{value[:40]}'", param.code)
            has_bar, system, code = token_parts(parts[0])
            key = composite_key(system if has_bar else "*", code)
            ors.append(
                and_(
                    table.c.param == f"{param.code}${key}",
                    value_condition(table, second, "", parts[1], self.blind),
                )
            )
        return select(table.c.res_id).where(table.c.res_type == res_type, or_(*ors))

    def _contains(self, res_type: str, param: SearchParam, values: list[str]) -> Select[Any]:
        s = idx_string.c
        low, high = f"{param.code}{CONTAINS}", f"{param.code}{CONTAINS[:-1]};"
        branches = []
        for value in values:
            grams = self.blind.gram_hashes(unescape(value))
            if len(normalise(unescape(value))) < GRAM:
                raise bad_request(
                    f"{param.code}:contains needs at least {GRAM} characters", param.code
                )
            branches.append(
                select(s.res_id)
                .where(
                    s.res_type == res_type,
                    s.param >= low,
                    s.param < high,
                    s.value.in_(sorted(grams)),
                )
                .group_by(s.res_id, s.param)
                .having(func.count(func.distinct(s.value)) == len(grams))
            )
        query = branches[0]
        for other in branches[1:]:
            query = query.union(other)  # type: ignore[assignment]
        return query

    # -- sorting ---------------------------------------------------------------------------------

    def _sort_key(self, res_type: str, known: dict[str, SearchParam], code: str, desc: bool) -> Any:
        if code == "_id":
            return resource.c.res_id
        if code == "_lastUpdated":
            return resource.c.last_updated
        param = known[code]
        table = INDEX_TABLES[param.type]
        column = {
            "date": table.c.get("high" if desc else "low"),
            "token": table.c.get("code"),
            "reference": table.c.get("target_id"),
        }.get(param.type, table.c.get("value"))
        assert column is not None
        agg = func.max(column) if desc else func.min(column)
        return (
            select(agg)
            .where(
                table.c.res_type == res_type,
                table.c.res_id == resource.c.res_id,
                table.c.param == code,
            )
            .scalar_subquery()
        )

    def keep_visible(
        self, pairs: Sequence[tuple[str, str]], vis: Visibility | None
    ) -> Select[Any] | None:
        """The (type, id) among ``pairs`` the caller may see; None when they see them all."""
        seen = visible(vis)
        if seen is None:
            return None
        return select(resource.c.res_type, resource.c.res_id).where(
            tuple_(resource.c.res_type, resource.c.res_id).in_(list(pairs)),
            resource.c.current,
            resource.c.deleted.is_(False),
            seen,
        )

    # -- _include and _revinclude ----------------------------------------------------------------

    def include(self, inc: Include, keys: Sequence[tuple[str, str]]) -> Select[Any] | None:
        """Pairs to add for one _include/_revinclude over the (type, id) ``keys`` found so far."""
        r = idx_reference.c
        if inc.reverse:
            targets = [rid for rtype, rid in keys if inc.target_type in (None, rtype)]
            if not targets:
                return None
            where = [r.res_type == inc.source_type, r.target_id.in_(targets)]
            if inc.codes != ("*",):
                where.append(r.param.in_(inc.codes))
            return select(r.res_type, r.res_id).where(*where).distinct()
        sources = [k for k in keys if k[0] == inc.source_type or inc.codes == ("*",)]
        if not sources:
            return None
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in sources:
            by_type.setdefault(res_type, []).append(res_id)
        owners = or_(*(and_(r.res_type == t, r.res_id.in_(ids)) for t, ids in by_type.items()))
        where = [owners, r.target_type.is_not(None)]
        if inc.codes != ("*",):
            where.append(r.param.in_(inc.codes))
        if inc.target_type:
            where.append(r.target_type == inc.target_type)
        return select(r.target_type, r.target_id).where(*where).distinct()


def visible(vis: Visibility | None) -> ColumnElement[bool] | None:
    """The condition on resource rows that keeps what ``vis`` lets the caller see.

    None when the caller sees everything (an operator with system scopes). Items hidden by a
    visibility flag are left out here, in the query, so they are absent from pages and counts.
    """
    if vis is None or vis.unrestricted:
        return None
    ors: list[ColumnElement[bool]] = []
    if vis.shared_rule is not None:
        shared = [resource.c.patient_id.is_(None)]
        if vis.shared_types is not None:
            shared.append(resource.c.res_type.in_(sorted(vis.shared_types)))
        ors.append(and_(*shared))
    for scope in vis.scopes:
        conds: list[ColumnElement[bool]] = []
        if scope.patients is not None:
            conds.append(resource.c.patient_id.in_(scope.patients))
        for denial in scope.denied:
            taken: list[ColumnElement[bool]] = []
            if denial.patients is not None:
                taken.append(resource.c.patient_id.in_(denial.patients))
            if denial.types is not None:
                taken.append(resource.c.res_type.in_(sorted(denial.types)))
            kept = not_(and_(*taken)) if taken else false()
            if denial.patients is not None:  # an item in no record is not in a denied record
                kept = or_(resource.c.patient_id.is_(None), kept)
            conds.append(kept)
        if scope.types is not None:
            conds.append(resource.c.res_type.in_(sorted(scope.types)))
        conds.extend(vis.item_conditions(scope, resource.c.res_type, resource.c.res_id))
        ors.append(and_(*conds) if conds else true())
    return or_(*ors) if ors else false()


def visible_versions(vis: Visibility | None) -> ColumnElement[bool] | None:
    """``visible`` for history: and only versions in the record their resource is in now, so
    versions written before an item moved to another record (an identity correction) are seen
    by system callers only. Of a type granular scopes narrow, only current versions: the scope's
    query is evaluated on the current search index, which says nothing of older versions."""
    seen = visible(vis)
    if seen is None:
        return None
    assert vis is not None
    narrowed = sorted({t for scope in vis.scopes for t, _ in scope.narrowed})
    if narrowed:
        seen = and_(seen, or_(resource.c.res_type.not_in(narrowed), resource.c.current))
    cur = resource.alias("cur")
    return and_(
        seen,
        select(cur.c.res_id)
        .where(
            cur.c.res_type == resource.c.res_type,
            cur.c.res_id == resource.c.res_id,
            cur.c.current,
            cur.c.patient_id.is_not_distinct_from(resource.c.patient_id),
        )
        .exists(),
    )


def _correlated(query: Select[Any]) -> ColumnElement[bool]:
    """EXISTS (the query's rows for this resource), or IN for a compound (UNION) query."""
    # The criteria queries name their FROM table in their columns (their WHERE reaches other
    # tables only through subqueries), so columns_clause_froms is enough; get_final_froms
    # walks the whole statement and was half of the compiler's time.
    if not isinstance(query, Select) or resource in query.columns_clause_froms:
        # A UNION, or a query on the resource table itself (_id, _lastUpdated), which an
        # unaliased EXISTS would correlate with itself.
        return resource.c.res_id.in_(query)
    first = query.selected_columns[0]
    condition: ColumnElement[bool] = query.where(first == resource.c.res_id).exists()
    return condition


def _selectivity(term: Term) -> int:
    """Rough rank of how few rows a criterion matches (lower drives the query)."""
    if term.code == "_id":
        return 0
    param = term.param
    if param is None:
        return 3 if term.code == "_has" else 5
    if param.type == "reference" or (param.type == "token" and param.blind):
        return 1
    if param.type in ("string", "composite"):
        return 2
    if param.type == "token":
        return 3
    return 4


def _instant_condition(col: Any, value: str) -> ColumnElement[bool]:
    prefix, raw = split_prefix(value)
    rng = date_range(raw)
    if rng is None:
        raise bad_request(f"'{raw}' is not a valid date", "_lastUpdated")
    return range_condition(prefix, col, col, rng)
