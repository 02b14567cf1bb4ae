"""What the in-record search reads in one resource: its readable fields and its documents' text.

``analyse`` turns one decrypted resource into an ``AnalysedItem``: the fields a person reads (code
displays and texts, notes, descriptions, values with their units, narrative) and the text of its
attached documents (PDF through pypdf, plain text), with the count of each term. Analyses are kept
in ``AnalysisCache``, in memory only, keyed by the resource's version: extracting a PDF's text costs
milliseconds, and the cache never decides what a caller sees (the search loads the items the policy
lets the caller see first, and only then looks their analyses up).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from carnet.fhir.repository import StoredResource
from carnet.record.search_text import terms

log = logging.getLogger(__name__)

# Keys whose string values are words a person reads (a code's display, a note's text...).
TEXT_KEYS = frozenset(
    {
        "display",
        "text",
        "valueString",
        "description",
        "title",
        "comment",
        "conclusion",
        "summary",
        "div",
        "family",
        "given",
        "name",
    }
)
# Subtrees that hold identifiers, plumbing or the bytes themselves, never words to search.
SKIPPED_KEYS = frozenset({"id", "meta", "identifier", "reference", "system", "url", "data", "hash"})
TAG = re.compile(r"<[^>]*>")
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024  # larger attachments are not read (a list still finds them)
MAX_PDF_PAGES = 200
DATE_KEYS = (
    "effectiveDateTime",
    "date",
    "issued",
    "onsetDateTime",
    "recordedDate",
    "authoredOn",
    "occurrenceDateTime",
    "performedDateTime",
)


@dataclass(frozen=True)
class Field:
    kind: str  # "document": text of an attached document; "item": a field of the resource
    text: str


@dataclass(frozen=True)
class AnalysedItem:
    """One resource version as the search sees it."""

    res_type: str
    res_id: str
    version: int
    title: str
    date: str | None
    fields: tuple[Field, ...]
    counts: Counter[str]
    length: int


def analyse(stored: StoredResource) -> AnalysedItem:
    """The readable fields, document text and term counts of one current resource."""
    body = stored.body or {}
    fields = [Field("item", text) for text in _texts(body)]
    fields.extend(Field("document", text) for text in _documents(body) if text.strip())
    counts: Counter[str] = Counter()
    for field in fields:
        counts.update(terms(field.text))
    return AnalysedItem(
        stored.res_type,
        stored.res_id,
        stored.version,
        title_of(body) or stored.res_type,
        date_of(body),
        tuple(fields),
        counts,
        sum(counts.values()),
    )


def title_of(body: dict[str, Any]) -> str:
    """What the item is, in words: its type or code (text first, then the first display)."""
    for key in ("type", "code", "vaccineCode", "medicationCodeableConcept", "category"):
        concept = body.get(key)
        if isinstance(concept, list):
            concept = concept[0] if concept else None
        if isinstance(concept, dict):
            if isinstance(concept.get("text"), str):
                return str(concept["text"])
            for coding in concept.get("coding") or []:
                if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                    return str(coding["display"])
    description = body.get("description")
    return description if isinstance(description, str) else ""


def date_of(body: dict[str, Any]) -> str | None:
    """The clinical date of the item, as written (FHIR date or dateTime)."""
    for key in DATE_KEYS:
        value = body.get(key)
        if isinstance(value, str):
            return value
    for key in ("effectivePeriod", "period", "performedPeriod"):
        period = body.get(key)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return str(period["start"])
    return None


def _texts(body: dict[str, Any]) -> Iterator[str]:
    stack: list[Any] = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        quantity = _quantity(node)
        if quantity:
            yield quantity
        for key, value in node.items():
            if key in SKIPPED_KEYS or key == "contained":
                continue
            if key in TEXT_KEYS and isinstance(value, str):
                yield TAG.sub(" ", value) if key == "div" else value
            elif key in TEXT_KEYS and isinstance(value, list):
                words = [v for v in value if isinstance(v, str)]
                if words:
                    yield " ".join(words)
            elif isinstance(value, dict | list):
                stack.append(value)


def _quantity(node: dict[str, Any]) -> str:
    """A Quantity's value and unit as French writes them ("7,2 mmol/L"); "" otherwise."""
    value = node.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    unit = node.get("unit") or node.get("code") or ""
    shown = f"{value:g}".replace(".", ",")
    return f"{shown} {unit}".strip()


def _documents(body: dict[str, Any]) -> Iterator[str]:
    for content in body.get("content") or [] if isinstance(body.get("content"), list) else []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(attachment, dict) and isinstance(attachment.get("data"), str):
            yield document_text(str(attachment.get("contentType") or ""), attachment["data"])
    for form in body.get("presentedForm") or []:  # a DiagnosticReport's report
        if isinstance(form, dict) and isinstance(form.get("data"), str):
            yield document_text(str(form.get("contentType") or ""), form["data"])


def document_text(content_type: str, data: str) -> str:
    """The text of an attachment (PDF or text/*), "" for other kinds or unreadable content."""
    if len(data) > MAX_DOCUMENT_BYTES * 4 // 3:
        return ""
    mime = content_type.split(";", 1)[0].strip().lower()
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return ""
    if mime.startswith("text/"):
        return raw.decode("utf-8", errors="replace")
    if mime != "application/pdf":
        return ""
    from pypdf import PdfReader  # imported on first use: most processes read no PDF
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(raw))
        return "\n".join(page.extract_text() or "" for page in reader.pages[:MAX_PDF_PAGES])
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError):
        # a broken or hostile PDF is still listed by its type and fields, just not by its text
        log.info("document text not extracted (unreadable PDF)")
        return ""


class AnalysisCache:
    """Analyses by (type, id, version), in this process's memory only, for ``ttl_seconds``.

    Bounded (least recently used out first) and short-lived, so a crypto-shredded record's words
    leave memory within ``ttl_seconds``; nothing of it is ever written anywhere."""

    def __init__(self, *, max_items: int = 50_000, ttl_seconds: float = 600.0) -> None:
        self.max_items = max_items
        self.ttl_seconds = ttl_seconds
        self._items: OrderedDict[tuple[str, str, int], tuple[float, AnalysedItem]] = OrderedDict()
        self._lock = threading.Lock()

    def held(self, key: tuple[str, str, int]) -> AnalysedItem | None:
        """The analysis of this (type, id, version) if it is still held."""
        now = time.monotonic()
        with self._lock:
            held = self._items.get(key)
            if held is None:
                return None
            if now - held[0] >= self.ttl_seconds:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return held[1]

    def get(self, stored: StoredResource) -> AnalysedItem:
        """The analysis of this resource version, made now if it is not held."""
        key = (stored.res_type, stored.res_id, stored.version)
        item = self.held(key)
        if item is None:
            item = analyse(stored)
            with self._lock:
                self._items[key] = (time.monotonic(), item)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
