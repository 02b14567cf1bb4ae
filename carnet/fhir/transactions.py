"""transaction and batch Bundles posted to the base URL.

A transaction is all-or-nothing: every entry is validated and every ``urn:uuid:`` reference resolved
before anything is written, the writes happen in one unit of work, and any failure rolls them all
back. A batch runs each entry on its own and reports each outcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import Connection

from carnet.caller import RequestContext
from carnet.db.ids import time_ordered_id
from carnet.fhir import render
from carnet.fhir.conditional_refs import conditional_references, resolve
from carnet.fhir.errors import FhirError, Issue, bad_request, not_found
from carnet.fhir.repository import StoredResource, Unit
from carnet.fhir.service import FhirService, FhirSession
from carnet.fhir.validation import within

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REFERENCE = re.compile(rb'"reference":"((?:[^"\\]|\\.)*)"')


@dataclass
class _Entry:
    index: int
    method: str
    url: str
    res_type: str
    res_id: str | None
    query: str
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None
    planned_id: str | None = None  # id minted (or matched) before the writes start
    matched: StoredResource | None = None  # conditional create that found its resource


def _entries(bundle: dict[str, Any]) -> list[Any]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise bad_request("Bundle.entry must be a list", "Bundle.entry")
    return entries


def refuse_oversized_entries(bundle: dict[str, Any], max_bytes: int) -> None:
    """413 if one entry's resource is larger than one resource may be on its own (the Bundle's
    own cap is larger: it may hold many resources, not one huge one)."""
    for i, raw in enumerate(_entries(bundle)):
        resource = raw.get("resource") if isinstance(raw, dict) else None
        if resource is not None and len(orjson.dumps(resource)) > max_bytes:
            raise FhirError.of(
                413,
                "too-long",
                f"Bundle.entry[{i}].resource exceeds {max_bytes} bytes",
                f"Bundle.entry[{i}].resource",
            )


def _parse_entry(service: FhirService, raw: Any, i: int, kind: str) -> _Entry:
    where = f"Bundle.entry[{i}]"
    request = raw.get("request") if isinstance(raw, dict) else None
    if not isinstance(request, dict):
        raise bad_request(f"{where}.request is required in a {kind}", f"{where}.request")
    method = str(request.get("method", "")).upper()
    url = str(request.get("url", "")).lstrip("/")
    if method not in _ORDER:
        raise bad_request(
            f"{where}.request.method '{method}' is not supported", f"{where}.request.method"
        )
    if method == "PATCH":
        raise FhirError.of(400, "not-supported", "PATCH is not supported yet", f"{where}.request")
    if any("%00" in str(request.get(k, "")) for k in ("url", "ifNoneExist", "ifMatch")):
        # matches nothing, and PostgreSQL refuses a NUL in text (a 500 once)
        raise bad_request(f"{where}.request contains a NUL character", f"{where}.request")
    path, _, query = url.partition("?")
    parts = path.split("/")
    operation = next((p for p in parts if p.startswith("$")), None)
    if operation:
        raise FhirError.of(
            400, "not-supported", f"operation {operation} is not supported", f"{where}.request.url"
        )
    res_type = parts[0]
    if not res_type or res_type not in service.definitions.resource_types:
        raise bad_request(
            f"{where}.request.url '{url[:80]}' names no known resource type", f"{where}.request.url"
        )
    res_id = parts[1] if len(parts) > 1 and parts[1] else None
    resource = raw.get("resource")
    if method in ("POST", "PUT"):
        if not isinstance(resource, dict):
            raise bad_request(f"{where}.resource is required for {method}", f"{where}.resource")
        if resource.get("resourceType") != res_type:
            raise bad_request(
                f"{where}.resource type does not match request.url '{res_type}'",
                f"{where}.resource",
            )
    if method in ("PUT", "DELETE") and res_id is None and not query:
        raise bad_request(
            f"{where}.request.url needs an id or search criteria", f"{where}.request.url"
        )
    return _Entry(
        index=i,
        method=method,
        url=url,
        res_type=res_type,
        res_id=res_id,
        query=query,
        resource=resource if isinstance(resource, dict) else None,
        full_url=raw.get("fullUrl"),
        if_none_exist=request.get("ifNoneExist"),
        if_match=request.get("ifMatch"),
    )


def _encoded_targets(mapping: dict[str, str]) -> dict[bytes, bytes]:
    """Each fullUrl as orjson writes it inside a string, to the ``"reference":`` pair that
    replaces it: built once per Bundle, so rewriting an entry costs a dictionary look-up per
    reference."""
    return {
        orjson.dumps(full_url)[1:-1]: b'"reference":' + orjson.dumps(target)
        for full_url, target in mapping.items()
    }


def _rewrite_references(
    resource: dict[str, Any], targets: dict[bytes, bytes], where: str
) -> dict[str, Any]:
    """The resource with references to Bundle fullUrls replaced by ``Type/id`` (``targets``
    from ``_encoded_targets``).

    Works on the serialised JSON (one regex pass in C) rather than walking the tree in Python;
    the serialisation is orjson's both for the resource and for the fullUrls, so equal strings
    are equal bytes.
    """
    raw = orjson.dumps(resource)
    if b'"reference":' not in raw:
        return resource
    unresolved: list[bytes] = []
    replaced = False

    def replace(match: re.Match[bytes]) -> bytes:
        nonlocal replaced
        target = targets.get(match[1])
        if target is not None:
            replaced = True
            return target
        # orjson escapes only quotes, backslashes and control characters: these prefixes are
        # the same in the JSON and in the string it holds.
        if match[1].startswith((b"urn:uuid:", b"urn:oid:")):
            unresolved.append(match[1])
        return match[0]

    rewritten = _REFERENCE.sub(replace, raw)
    if unresolved:
        value = orjson.loads(b'"' + unresolved[0] + b'"')
        raise FhirError.of(
            404,
            "not-found",
            f"reference '{value}' in {where} matches no entry of this transaction",
            where,
        )
    return dict(orjson.loads(rewritten)) if replaced else resource


def run_transaction(
    service: FhirService,
    bundle: dict[str, Any],
    base: str,
    ctx: RequestContext,
    *,
    record_progress: Callable[[Connection, int], None] | None = None,
    keep_records: bool = False,
) -> dict[str, Any]:
    """Execute a transaction Bundle atomically and return the transaction-response Bundle.

    ``record_progress(conn, number of entries)`` runs inside the same database transaction, after
    the writes: the importer records there that the Bundle was imported, so that no crash can
    separate the two. ``keep_records``: a PUT never moves an item out of its patient's record
    (the importer's rule, FhirSession.update).
    """
    try:
        # Parsed and validated before the transaction opens: a bad entry costs nothing, and on
        # SQLite the write lock is not held while other workers could use it.
        entries = [
            _parse_entry(service, raw, i, "transaction") for i, raw in enumerate(_entries(bundle))
        ]
        for e in entries:
            if e.resource is not None:
                _validate_entry(service, e)
    except FhirError as err:
        service.record_failure(ctx, "transaction", None, None, err.status)
        raise
    with service.session(ctx, "transaction", None, None) as session:
        unit = session.unit
        if record_progress is not None:
            done = len(entries)
            unit.before_commit.append(lambda conn: record_progress(conn, done))
        mapping: dict[str, str] = {}
        for e in entries:
            target = _plan(session, e)
            if target and e.full_url:
                if mapping.get(e.full_url, target) != target:
                    # bdl-7: one fullUrl names one resource (its versions may repeat it). Two
                    # entries becoming two resources under it leave its references meaning
                    # either: a document meant for one new Patient would go to the other.
                    where = f"Bundle.entry[{e.index}].fullUrl"
                    raise bad_request(f"{where} names an earlier entry's other resource", where)
                mapping[e.full_url] = target
        for e in entries:
            _resolve_conditional(session, e, mapping)
        targets = _encoded_targets(mapping)
        for e in entries:
            # A Bundle stored as a resource (a document) resolves its references against itself.
            if e.resource is not None and e.res_type != "Bundle":
                e.resource = _rewrite_references(
                    e.resource, targets, f"Bundle.entry[{e.index}].resource"
                )
        # Updates and deletes by id read their current version: in one query per type.
        unit.prefetch_current(
            [
                (e.res_type, e.planned_id or e.res_id or "")
                for e in entries
                if e.method in ("PUT", "DELETE") and (e.planned_id or e.res_id)
            ]
        )
        responses: dict[int, dict[str, Any]] = {}
        for e in sorted(entries, key=lambda x: (_ORDER[x.method], x.index)):
            responses[e.index] = _execute(session, e, base, keep_records)
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [_entry(responses[e.index]) for e in entries],
    }


def _plan(session: FhirSession, e: _Entry) -> str | None:
    """Decide the id each POST/PUT entry will have, so references to its fullUrl can be rewritten."""
    if e.method == "POST":
        existing = (
            session.conditional_match(e.res_type, e.if_none_exist) if e.if_none_exist else None
        )
        if existing is not None:
            e.matched = existing
            e.planned_id = existing.res_id
        else:
            e.planned_id = time_ordered_id()
    elif e.method == "PUT":
        if e.res_id is None:  # conditional update: the match, or a new id
            existing = session.conditional_match(e.res_type, e.query)
            e.planned_id = existing.res_id if existing else time_ordered_id()
        else:
            e.planned_id = e.res_id
    else:
        return None
    return f"{e.res_type}/{e.planned_id}"


def _resolve_conditional(session: FhirSession, e: _Entry, mapping: dict[str, str]) -> bool:
    """Add to ``mapping`` the ``Type/id`` each conditional reference of the entry's resource
    resolves to, searched before any write (http.html#trules); True if it has any. A Bundle
    stored as a resource keeps its content as sent."""
    if e.resource is None or e.res_type == "Bundle":
        return False
    found = conditional_references(e.res_type, e.resource)
    for path, reference in found:
        if reference not in mapping:
            where = within(f"Bundle.entry[{e.index}].resource", path)
            mapping[reference] = resolve(session, reference, where)
    return bool(found)


def _entry(response: dict[str, Any]) -> dict[str, Any]:
    resource = response.pop("resource", None)
    return {"resource": resource, "response": response} if resource else {"response": response}


def run_batch(
    service: FhirService,
    bundle: dict[str, Any],
    base: str,
    ctx: RequestContext,
    *,
    record_progress: Callable[[Connection, int], None] | None = None,
    keep_records: bool = False,
) -> dict[str, Any]:
    """Execute each entry independently; failures are reported per entry.

    ``record_progress(conn, index + 1)`` runs inside each successful entry's own transaction;
    ``keep_records`` as for run_transaction.
    """
    out = []
    for i, raw in enumerate(_entries(bundle)):
        e: _Entry | None = None
        try:
            e = _parse_entry(service, raw, i, "batch")
            if e.resource is not None:
                _validate_entry(service, e)
        except FhirError as err:
            # Refused before it reached the store: audited all the same.
            request = raw.get("request") if isinstance(raw, dict) else None
            method = str(request.get("method", "")) if isinstance(request, dict) else ""
            service.record_failure(
                ctx, method.lower() or "batch", e.res_type if e else None, None, err.status
            )
            out.append(_entry({"status": str(err.status), "outcome": err.outcome()}))
            continue
        try:
            with service.session(ctx, e.method.lower(), e.res_type, e.res_id) as session:
                if record_progress is not None:
                    _record_entry(session.unit, record_progress, i + 1)
                _plan(session, e)
                mapping: dict[str, str] = {}
                if _resolve_conditional(session, e, mapping):
                    where = f"Bundle.entry[{i}].resource"
                    e.resource = _rewrite_references(
                        e.resource or {}, _encoded_targets(mapping), where
                    )
                response = _execute(session, e, base, keep_records)
        except FhirError as err:
            response = {"status": str(err.status), "outcome": err.outcome()}
        out.append(_entry(response))
    return {"resourceType": "Bundle", "type": "batch-response", "entry": out}


def _record_entry(
    unit: Unit, record_progress: Callable[[Connection, int], None], done: int
) -> None:
    unit.before_commit.append(lambda conn: record_progress(conn, done))


def _validate_entry(service: FhirService, e: _Entry) -> None:
    try:
        service.validator.validate(e.resource, e.res_type)
    except FhirError as err:
        prefix = f"Bundle.entry[{e.index}].resource"
        raise FhirError(
            err.status,
            [
                Issue(i.code, f"{prefix}: {i.diagnostics}", within(prefix, i.expression))
                for i in err.issues
            ],
        ) from None


def _execute(
    session: FhirSession, e: _Entry, base: str, keep_records: bool = False
) -> dict[str, Any]:
    if e.method == "POST":
        assert e.resource is not None
        if e.matched is not None:
            session.check("read", e.res_type, e.matched.res_id)
            session.record("read", e.res_type, [e.matched])
            return render.entry_response(e.matched, "200 OK")
        result = session.create(e.res_type, e.resource, None, new_id=e.planned_id)
        if result.held is not None:  # held for identity vigilance
            return {"status": "202 Accepted", "outcome": result.held}
        return render.entry_response(result.stored, "201 Created")
    if e.method == "PUT":
        assert e.resource is not None and e.planned_id is not None
        if e.res_id is None:
            e.resource["id"] = e.planned_id
        result = session.update(
            e.res_type,
            e.planned_id,
            e.resource,
            e.if_match,
            server_chose_id=e.res_id is None,  # a conditional update that matched nothing
            keep_record=keep_records,
            at=f"Bundle.entry[{e.index}].resource",
        )
        return render.entry_response(result.stored, "201 Created" if result.created else "200 OK")
    if e.method == "DELETE":
        res_id = e.res_id
        if res_id is None:
            existing = session.conditional_match(e.res_type, e.query)
            if existing is None:
                return {"status": "204 No Content"}
            res_id = existing.res_id
        session.delete(e.res_type, res_id)
        return {"status": "204 No Content"}
    # GET / HEAD
    if e.res_id:
        session.check("read", e.res_type, e.res_id)
        stored = session.unit.current(e.res_type, e.res_id)
        if stored is None:
            raise not_found(f"{e.res_type}/{e.res_id} is not known")
        session.check_resource("read", stored)  # as a plain read does
        if stored.deleted:
            raise not_found(f"{e.res_type}/{e.res_id} is not known")
        session.record("read", e.res_type, [stored])
        return {**render.entry_response(stored, "200 OK"), "resource": stored.body}
    params = parse_qsl(e.query, keep_blank_values=True)
    return {"status": "200 OK", "resource": session.search(base, e.res_type, params)}
