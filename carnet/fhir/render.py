"""Shapes of what the API returns: searchset and history Bundles, entry responses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from carnet.fhir.repository import StoredResource


def location(stored: StoredResource) -> str:
    return f"{stored.res_type}/{stored.res_id}/_history/{stored.version}"


def entry_response(stored: StoredResource, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "location": location(stored),
        "etag": stored.etag,
        "lastModified": stored.last_updated,
    }


def page_links(
    base: str, path: str, params: list[tuple[str, str]], offset: int, count: int, total: int | None
) -> list[dict[str, str]]:
    def url(at: int) -> str:
        query = [*params, ("_count", str(count)), ("_offset", str(at))]
        return f"{base}/{path}?{urlencode(query)}"

    links = [{"relation": "self", "url": url(offset)}]
    if count > 0 and (total is None or offset + count < total):
        links.append({"relation": "next", "url": url(offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    return links


def searchset(
    base: str,
    total: int | None,
    links: list[dict[str, str]],
    matches: list[StoredResource],
    outcome: dict[str, Any] | None = None,
    included: list[StoredResource] | None = None,
) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    entries = [
        {
            "fullUrl": f"{base}/{m.res_type}/{m.res_id}",
            "resource": m.body,
            "search": {"mode": "match"},
        }
        for m in matches
    ]
    entries.extend(
        {
            "fullUrl": f"{base}/{m.res_type}/{m.res_id}",
            "resource": m.body,
            "search": {"mode": "include"},
        }
        for m in included or []
    )
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


def history(
    base: str, total: int, links: list[dict[str, str]], versions: list[StoredResource]
) -> dict[str, Any]:
    entries = []
    for v in versions:
        entry: dict[str, Any] = {"fullUrl": f"{base}/{v.res_type}/{v.res_id}"}
        if v.body is not None:
            entry["resource"] = v.body
        entry["request"] = {
            "method": v.method,
            "url": v.res_type if v.method == "POST" else f"{v.res_type}/{v.res_id}",
        }
        entry["response"] = {
            "status": "201 Created"
            if v.method == "POST"
            else "204 No Content"
            if v.deleted
            else "200 OK",
            "etag": v.etag,
            "lastModified": v.last_updated,
        }
        entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return bundle
