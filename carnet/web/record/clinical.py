"""Structured data as readable rows: latest results with unit, reference range and a flag in
words; vaccinations; allergies; current treatments; conditions. Pure functions over the Bundles
the caller-bound search returned (nothing here reads the store)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from carnet.web.i18n import N_
from carnet.web.profile.declared import is_declared

INTERPRETATION_WORDS = {
    "H": N_("élevé"),
    "HH": N_("très élevé"),
    "HU": N_("très élevé"),
    "L": N_("bas"),
    "LL": N_("très bas"),
    "LU": N_("très bas"),
    "A": N_("anormal"),
    "AA": N_("très anormal"),
    "N": N_("normal"),
}
FLAG_CLASSES = {"H": "high", "HH": "high", "HU": "high", "L": "low", "LL": "low", "LU": "low"}


def resources(bundle: Mapping[str, Any], res_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e.get("resource", {}).get("resourceType") == res_type
    ]


def concept_text(concept: Mapping[str, Any] | None) -> str:
    if not concept:
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display"):
            return str(coding["display"])
        if coding.get("code"):
            return str(coding["code"])
    return ""


def code_of(concept: Mapping[str, Any] | None) -> str:
    for coding in (concept or {}).get("coding", []):
        if coding.get("code"):
            return str(coding["code"])
    return ""


def when(resource: Mapping[str, Any]) -> str:
    """The clinically relevant date of a resource, as FHIR text ("" if none)."""
    for key in (
        "effectiveDateTime",
        "occurrenceDateTime",
        "authoredOn",
        "onsetDateTime",
        "recordedDate",
        "issued",
    ):
        if resource.get(key):
            return str(resource[key])
    period = resource.get("effectivePeriod") or {}
    return str(period.get("start", ""))


@dataclass(frozen=True)
class ResultRow:
    code: str
    label: str
    value: str | float | None  # a number is formatted by the template (decimal comma)
    unit: str
    low: float | None
    high: float | None
    flag: str  # an interpretation code (H, L, N...) or ""
    date: str

    @property
    def flag_word(self) -> str:
        return INTERPRETATION_WORDS.get(self.flag, "")

    @property
    def flag_class(self) -> str:
        return FLAG_CLASSES.get(self.flag, "abnormal" if self.flag.startswith("A") else "")


def _flag(
    obs: Mapping[str, Any], value: float | None, low: float | None, high: float | None
) -> str:
    for concept in obs.get("interpretation", []):
        code = code_of(concept)
        if code in INTERPRETATION_WORDS:
            return code
    if value is None:
        return ""
    if low is not None and value < low:
        return "L"
    if high is not None and value > high:
        return "H"
    return "N" if low is not None or high is not None else ""


def result_row(obs: Mapping[str, Any]) -> ResultRow:
    quantity = obs.get("valueQuantity") or {}
    value: str | float | None = quantity.get("value")
    if value is None:
        value = obs.get("valueString") or concept_text(obs.get("valueCodeableConcept")) or None
    ranges = obs.get("referenceRange") or [{}]
    low = (ranges[0].get("low") or {}).get("value")
    high = (ranges[0].get("high") or {}).get("value")
    number = value if isinstance(value, int | float) else None
    return ResultRow(
        code=code_of(obs.get("code")),
        label=concept_text(obs.get("code")),
        value=value,
        unit=str(quantity.get("unit") or quantity.get("code") or ""),
        low=low,
        high=high,
        flag=_flag(obs, number, low, high),
        date=when(obs),
    )


def latest_results(observations: Iterable[Mapping[str, Any]]) -> list[ResultRow]:
    """The latest value of each test (by code), sorted by label."""
    latest: dict[str, ResultRow] = {}
    for obs in observations:
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        row = result_row(obs)
        key = row.code or row.label
        if key not in latest or row.date > latest[key].date:
            latest[key] = row
    return sorted(latest.values(), key=lambda r: r.label.lower())


@dataclass(frozen=True)
class Item:
    """A line of a simple table: what, when, and a detail (status, reaction, dosage)."""

    label: str
    date: str
    detail: str = ""
    declared: bool = False  # the patient declared it (their medical profile)


def vaccinations(immunizations: Iterable[Mapping[str, Any]]) -> list[Item]:
    items = [
        Item(
            concept_text(i.get("vaccineCode")),
            when(i),
            str(i.get("lotNumber", "")),
            is_declared(i),
        )
        for i in immunizations
        if i.get("status") != "entered-in-error"
    ]
    return sorted(items, key=lambda i: i.date, reverse=True)


def allergies(intolerances: Iterable[Mapping[str, Any]]) -> list[Item]:
    items = []
    for a in intolerances:
        reactions = [
            concept_text(m)
            for reaction in a.get("reaction", [])
            for m in reaction.get("manifestation", [])
        ]
        items.append(
            Item(
                concept_text(a.get("code")),
                when(a),
                ", ".join(r for r in reactions if r),
                is_declared(a),
            )
        )
    return sorted(items, key=lambda i: i.label.lower())


def treatments(requests: Iterable[Mapping[str, Any]]) -> list[Item]:
    """Current treatments: active prescriptions (MedicationRequest) and statements
    (MedicationStatement, such as those the patient declared)."""
    items = []
    for m in requests:
        if m.get("status") not in ("active", "on-hold", "intended", None):
            continue
        dosage = (m.get("dosageInstruction") or m.get("dosage") or [{}])[0].get("text", "")
        what = concept_text(m.get("medicationCodeableConcept"))
        items.append(Item(what, when(m), str(dosage), is_declared(m)))
    return sorted(items, key=lambda i: i.date, reverse=True)


def conditions(found: Iterable[Mapping[str, Any]]) -> list[Item]:
    items = []
    for c in found:
        status = code_of(c.get("clinicalStatus"))
        if status in ("inactive", "resolved", "remission") or code_of(
            c.get("verificationStatus")
        ) in ("refuted", "entered-in-error"):
            continue
        items.append(Item(concept_text(c.get("code")), when(c), status, is_declared(c)))
    return sorted(items, key=lambda i: i.date, reverse=True)
