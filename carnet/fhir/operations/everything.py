"""Patient/{id}/$everything: the patient, their compartment, and what it references outside it.

The compartment comes from the repository (resources whose patient compartment is this patient);
resources they reference that belong to no compartment (Practitioner, Organization, Medication,
Location...) are added with ``search.mode = include``. ``_type`` and ``_since`` filter both;
``_count``/``_offset`` page over the whole ordered list (compartment first, oldest first), and
``Bundle.total`` counts the matches only, as R4 defines it for a searchset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from carnet.caller import RequestContext
from carnet.fhir import render
from carnet.fhir.dates import date_range
from carnet.fhir.errors import bad_request, gone, not_found
from carnet.fhir.query import visible
from carnet.fhir.repository import StoredResource, Unit
from carnet.fhir.service import FhirService, FhirSession, int_param

_REFERENCE = re.compile(rb'"reference":"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"')


def references(bodies: Iterable[dict[str, Any] | None]) -> list[tuple[str, str]]:
    """Relative ``Type/id`` references found anywhere in ``bodies``, first occurrence order."""
    seen: dict[tuple[str, str], None] = {}
    for body in bodies:
        if body is None:
            continue
        for match in _REFERENCE.finditer(orjson.dumps(body)):
            seen.setdefault((match.group(1).decode(), match.group(2).decode()), None)
    return list(seen)


def parse_types(service: FhirService, raw: list[str]) -> list[str] | None:
    """``_type`` values (repeated and/or comma-separated); 400 for an unknown type."""
    types = [t.strip() for value in raw for t in value.split(",") if t.strip()]
    for res_type in types:
        if res_type not in service.definitions.resource_types:
            raise bad_request(f"_type '{res_type[:64]}' is not a resource type", "_type")
    return types or None


def parse_since(raw: str | None) -> str | None:
    """``_since`` as the repository's sortable text; 400 if it is not an instant."""
    if raw is None:
        return None
    rng = date_range(raw)
    if rng is None or "T" not in raw:
        raise bad_request(f"_since '{raw[:40]}' is not a valid instant", "_since")
    return rng[0]


def readable_patient(session: FhirSession, patient_id: str) -> StoredResource:
    """The Patient a record operation starts from: 404 if unknown; then the caller's right to
    read it decided (403, or 404 as for a missing one) before a deletion is told (410), as a
    plain read does, so a stranger never learns that a record existed and was deleted."""
    patient = session.unit.current("Patient", patient_id)
    if patient is None:
        raise not_found(f"Patient/{patient_id} is not known")
    session.check_resource("read", patient)
    if patient.deleted:
        raise gone(f"Patient/{patient_id} was deleted")
    return patient


def outside_references(
    unit: Unit, resources: list[StoredResource], depth: int = 2
) -> list[StoredResource]:
    """Resources outside any compartment referenced by ``resources`` (and, to ``depth``, by those)."""
    have = {(r.res_type, r.res_id) for r in resources}
    found: list[StoredResource] = []
    frontier = resources
    for _ in range(depth):
        wanted = [k for k in references(r.body for r in frontier) if k not in have]
        if not wanted:
            break
        frontier = [r for r in unit.load(wanted) if r.patient_id is None]
        have.update(wanted)
        found.extend(frontier)
    return found


def everything(
    service: FhirService,
    ctx: RequestContext,
    base: str,
    patient_id: str,
    params: list[tuple[str, str]],
) -> dict[str, Any]:
    """A searchset Bundle of the patient's record; 404 for an unknown patient."""
    types = parse_types(service, [v for k, v in params if k == "_type"])
    query = dict(params)
    since = parse_since(query.get("_since"))
    count = int_param(query, "_count", service.max_page_size)
    count = min(max(count, 0), service.max_page_size)
    offset = max(int_param(query, "_offset", 0), 0)
    with service.session(ctx, "everything", "Patient", patient_id) as session:
        unit = session.unit
        session.check("everything", "Patient", patient_id)
        readable_patient(session, patient_id)
        vis = session.visibility("search")
        where = visible(vis)
        # Referenced resources are found from the whole compartment, whatever _type asks for.
        compartment = unit.compartment(patient_id, where=where)
        keys = [(r.res_type, r.res_id) for r in compartment]
        if types is not None or since is not None:
            keys = unit.compartment_keys(patient_id, types, since, where)
        extra = [
            r
            for r in session.visible_only(vis, outside_references(unit, compartment, depth=1))
            if (types is None or r.res_type in types)
            and (since is None or _sortable(r.last_updated) >= since)
        ]
        wanted = keys + [(r.res_type, r.res_id) for r in extra]
        total = len(keys)  # Bundle.total counts matches; included resources are not counted
        page_keys = wanted[offset : offset + count]
        included = {(r.res_type, r.res_id) for r in extra}
        by_key = {(r.res_type, r.res_id): r for r in compartment}
        by_key.update({(r.res_type, r.res_id): r for r in extra})
        page = [by_key[k] for k in page_keys if k in by_key]
        # An empty page (``_count=0``) still tells how much the record holds: it names the record.
        session.record("everything", "Patient", page, counted=[] if page else [patient_id])
    keep = [(k, v) for k, v in params if k in ("_type", "_since")]
    path = f"Patient/{patient_id}/$everything"
    links = render.page_links(base, path, keep, offset, count, len(wanted))  # pages reach includes
    bundle = render.searchset(base, total, links, page)
    for entry, stored in zip(bundle.get("entry", []), page, strict=False):
        if (stored.res_type, stored.res_id) in included:
            entry["search"] = {"mode": "include"}
    return bundle


def _sortable(fhir_instant: str) -> str:
    # "2024-01-02T03:04:05.678Z" -> "2024-01-02T03:04:05.678000", the repository's text form
    return fhir_instant.rstrip("Z") + "000"
