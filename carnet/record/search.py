"""Search in one patient's record: full text, French, over what the caller may see, in memory.

``RecordSearch.search(ctx, patient_id, words)`` opens a FHIR session as the caller, loads the
record's items the policy lets them see (the same visibility the FHIR searches compile into SQL, so
a masked document is never loaded), analyses each (``search_items``: fields and documents' text,
cached in memory by version), ranks them with BM25 over those items only (what the caller cannot
see weighs nothing in the scores either), and returns the best with a snippet. Nothing is indexed on
disk: the words of the record and of the query exist only in this process's memory. The query is
one audit event (action ``search`` on the Patient and the items returned), which names no word.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from carnet.caller import RequestContext, Visibility
from carnet.fhir.errors import FhirError, bad_request, gone, not_found
from carnet.fhir.repository import StoredResource
from carnet.fhir.service import FhirService
from carnet.fhir.session import FhirSession
from carnet.record.search_items import AnalysedItem, AnalysisCache, Field
from carnet.record.search_text import spans, terms

MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 12
BM25_K1 = 1.2
BM25_B = 0.75
SNIPPET_CHARS = 180
_SPACES = re.compile(r"\s+")
NOT_SEARCHED = frozenset({"Patient", "Provenance", "AuditEvent", "Consent", "RelatedPerson"})


@dataclass(frozen=True)
class Snippet:
    """Text around the first match; ``segments`` alternate plain text and matched words."""

    segments: tuple[tuple[str, bool], ...]
    cut_before: bool
    cut_after: bool

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.segments)

    def html(self) -> str:
        """The snippet as HTML: every character escaped, matched words in ``<mark>``."""
        parts = ["…" if self.cut_before else ""]
        for text, matched in self.segments:
            escaped = html.escape(text)
            parts.append(f"<mark>{escaped}</mark>" if matched else escaped)
        parts.append("…" if self.cut_after else "")
        return "".join(parts)


@dataclass(frozen=True)
class SearchHit:
    res_type: str
    res_id: str
    title: str
    date: str | None
    kind: str  # "document" when the words were found in an attached document's text
    score: float
    snippet: Snippet


@dataclass(frozen=True)
class SearchResults:
    hits: list[SearchHit]
    total: int  # items that matched (hits holds the best ``limit`` of them)
    searched: int  # items the caller may see that were searched


class RecordSearch:
    """Full-text search in one patient's record, as one caller may see it."""

    def __init__(self, fhir: FhirService, cache: AnalysisCache | None = None) -> None:
        self.fhir = fhir
        self.cache = cache or AnalysisCache()

    def search(
        self, ctx: RequestContext, patient_id: str, words: str, *, limit: int = 20
    ) -> SearchResults:
        """The items of ``patient_id``'s record that ``ctx``'s caller may see and that match
        ``words``, best first. FhirError 400 for an empty or oversized query, 404 when the
        record is unknown or not the caller's to open (alike), 410 for an erased one; each
        attempt is audited without its words."""
        with self.fhir.session(ctx, "search", "Patient", patient_id) as session:
            query = _query_terms(words)
            session.check("search", "Patient", patient_id)
            patient = session.current("Patient", patient_id)
            missing = f"Patient/{patient_id} is not known"
            if patient is None:
                raise not_found(missing)
            try:
                session.check_resource("read", patient)
            except FhirError as err:
                # a record the caller may not open answers as one that does not exist: a
                # restriction is invisible to the one it restricts (the audit keeps the rule)
                raise FhirError(404, not_found(missing).issues, rule=err.rule) from None
            if patient.deleted:
                raise gone(f"Patient/{patient_id} was deleted")
            vis = session.visibility("search")
            versions = [
                v for v in session.visible_versions(patient_id, vis) if v[0] not in NOT_SEARCHED
            ]
            items = self._analyses(session, vis, versions)
            ranked = rank(list(items.values()), query)
            best = ranked[: max(0, limit)]
            hits = [_hit(items[key], score, query) for key, score in best]
            shown = session.load_visible(vis, [key for key, _ in best])
            session.record("search", "Patient", [patient, *shown])
        return SearchResults(hits, len(ranked), len(items))

    def warm(self, patient_id: str, bodies: list[dict[str, Any]]) -> int:
        """Analyse, ahead of a first search, items a caller of this record has just read (the
        documents a record page listed: their PDFs' text is the slow part); returns how many
        were new. Only what was read is analysed, and the cache never decides what a caller sees.
        """
        added = 0
        for body in bodies:
            version = str((body.get("meta") or {}).get("versionId", ""))
            res_type, res_id = body.get("resourceType"), body.get("id")
            if (
                not version.isdigit()
                or not isinstance(res_type, str)
                or not isinstance(res_id, str)
            ):
                continue
            if res_type in NOT_SEARCHED or self.cache.held((res_type, res_id, int(version))):
                continue
            stored = StoredResource(res_type, res_id, int(version), "", False, "", patient_id, body)
            self.cache.get(stored)
            added += 1
        return added

    def _analyses(
        self, session: FhirSession, vis: Visibility | None, versions: list[tuple[str, str, int]]
    ) -> dict[tuple[str, str], AnalysedItem]:
        """The analysis of each visible version: from the cache, the others loaded (decrypted)
        and analysed now."""
        found: dict[tuple[str, str], AnalysedItem] = {}
        missing: list[tuple[str, str]] = []
        for res_type, res_id, version in versions:
            item = self.cache.held((res_type, res_id, version))
            if item is None:
                missing.append((res_type, res_id))
            else:
                found[(res_type, res_id)] = item
        for stored in session.load_visible(vis, missing):
            found[(stored.res_type, stored.res_id)] = self.cache.get(stored)
        return found


def _query_terms(words: str) -> frozenset[str]:
    if len(words) > MAX_QUERY_CHARS:
        raise bad_request(f"a search is at most {MAX_QUERY_CHARS} characters", "q")
    query = frozenset(terms(words))
    if not query:
        raise bad_request("give at least one word to search for", "q")
    if len(query) > MAX_QUERY_TERMS:
        raise bad_request(f"a search is at most {MAX_QUERY_TERMS} words", "q")
    return query


def rank(
    items: Sequence[AnalysedItem], query: frozenset[str]
) -> list[tuple[tuple[str, str], float]]:
    """BM25 scores of the items holding at least one query term, best first (ties: newest
    date first, then type and id, so the order is stable)."""
    if not items:
        return []
    average = sum(i.length for i in items) / len(items) or 1.0
    frequency = {t: sum(1 for i in items if t in i.counts) for t in query}
    count = len(items)
    scored: list[tuple[float, str, str, str]] = []
    for item in items:
        score = 0.0
        for t in query:
            tf = item.counts.get(t, 0)
            if not tf:
                continue
            idf = math.log(1 + (count - frequency[t] + 0.5) / (frequency[t] + 0.5))
            norm = tf + BM25_K1 * (1 - BM25_B + BM25_B * item.length / average)
            score += idf * tf * (BM25_K1 + 1) / norm
        if score > 0:
            scored.append((score, item.date or "", item.res_type, item.res_id))
    # best score first; among equal scores the newest date, then type and id (a stable order)
    scored.sort(key=lambda s: (s[2], s[3]))
    scored.sort(key=lambda s: s[1], reverse=True)
    scored.sort(key=lambda s: s[0], reverse=True)
    return [((res_type, res_id), score) for score, _, res_type, res_id in scored]


def _hit(item: AnalysedItem, score: float, query: frozenset[str]) -> SearchHit:
    field = max(item.fields, key=lambda f: _matches(f, query))
    return SearchHit(
        item.res_type,
        item.res_id,
        item.title,
        item.date,
        field.kind,
        round(score, 4),
        snippet(field.text, query),
    )


def _matches(field: Field, query: frozenset[str]) -> int:
    return sum(1 for t in terms(field.text) if t in query)


def snippet(text: str, query: frozenset[str], width: int = SNIPPET_CHARS) -> Snippet:
    """About ``width`` characters of ``text`` around its first matching word, words cut whole,
    every matching word in the window marked."""
    found = [(start, end) for start, end, t in spans(text) if t in query]
    first = found[0][0] if found else 0
    start = max(0, first - width // 3)
    if start:
        space = text.rfind(" ", 0, start)
        start = space + 1 if space >= 0 and start - space < 30 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.find(" ", end)
        end = space if 0 <= space < end + 30 else end
    segments: list[tuple[str, bool]] = []
    at = start
    for s, e in found:
        if s < start or e > end:
            continue
        if s > at:
            segments.append((text[at:s], False))
        segments.append((text[s:e], True))
        at = e
    if at < end:
        segments.append((text[at:end], False))
    cleaned = tuple((t if m else _SPACES.sub(" ", t), m) for t, m in segments)
    return Snippet(cleaned, start > 0, end < len(text))
