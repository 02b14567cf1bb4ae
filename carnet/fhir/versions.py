"""Version ids and ETags of stored resources, and whether an update changes content."""

from __future__ import annotations

from typing import Any

from carnet.fhir.errors import FhirError


def _content(body: dict[str, Any] | None) -> dict[str, Any] | None:
    if body is None:
        return None
    meta = {
        k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")
    }
    stripped = {k: v for k, v in body.items() if k != "meta"}
    if meta:
        stripped["meta"] = meta
    return stripped


def same_content(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether an update leaves the content as it was (meta's versionId and lastUpdated aside)."""
    return _content(old) == _content(new)


def etag_version(etag: str) -> int:
    """The version an If-Match ETag names (``W/"3"``); 400 if it names none."""
    text = etag.strip()
    if text.startswith("W/"):
        text = text[2:]
    number = version_number(text.strip('"'))
    if number is None:
        raise FhirError.of(400, "invalid", f"If-Match '{etag[:30]}' is not a version ETag")
    return number


def version_number(text: str) -> int | None:
    """A version id as a number, or None: ASCII digits only (``"²".isdigit()`` is true but
    ``int`` refuses it) and small enough for an INTEGER column (SQLite and PostgreSQL bigint)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)
