"""What a kind of profile item is: its FHIR type, its form, how a body is built from the form
and read back into it, and the line that lists it. The kinds themselves are in
clinical_kinds.py and personal_kinds.py; ``KINDS`` holds them in the page's order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carnet.web.i18n import N_
from carnet.web.profile.fields import Field, Message

JSON = dict[str, Any]
Gettext = Callable[[str], str]  # the page's language: the choices' labels are message ids
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
PARTIAL_DATE_HINT = N_("Une date (12/03/2015), un mois (03/2015) ou une année (2015).")


@dataclass(frozen=True)
class Line:
    """An item as the profile lists it: what, a detail, and its date (FHIR text, may be "")."""

    label: str
    detail: str = ""
    date: str = ""


@dataclass(frozen=True)
class Kind:
    """A kind of item of the profile (its texts are French message ids)."""

    slug: str  # in the address: /espace/profil/<slug>/...
    title: str
    add_label: str
    intro: str
    res_type: str
    fields: tuple[Field, ...]
    # (values, patient id, today) -> the body, but for what ``copied`` and ``named`` write
    builder: Callable[[Mapping[str, Any], str, str], JSON]
    # an item -> the form's values, but for what ``copied`` and ``named`` read
    reader: Callable[[Mapping[str, Any]], dict[str, str]] = lambda _: {}
    copied: tuple[tuple[str, str], ...] = ()  # (form value, FHIR element): written as it is
    named: tuple[tuple[str, str], ...] = ()  # (form value, FHIR element): a concept's text
    shows: tuple[str, str, str] = ("", "", "")  # the form values a line shows: what, detail, date
    lister: Callable[[Mapping[str, Any], Gettext], Line] | None = None  # else ``shows``
    search: tuple[tuple[str, str], ...] = ()  # extra search parameters listing the kind
    matches: Callable[[Mapping[str, Any]], bool] = lambda _: True
    check: Callable[[Mapping[str, Any]], dict[str, Message]] = lambda _: {}
    editable: bool = True  # documents are replaced, not edited
    single: bool = False  # one position at a time (organ donation): adding edits it
    upload_nature: str = ""  # added through the document upload with this nature
    extra: Mapping[str, Any] = field(default_factory=dict)

    def build(self, values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
        """The FHIR body of the form's (parsed) values."""
        body = self.builder(values, patient_id, today)
        for name, element in self.copied:
            optional(body, element, values.get(name))
        for name, element in self.named:
            optional(body, element, {"text": values[name]} if values.get(name) else None)
        return body

    def values_of(self, item: Mapping[str, Any]) -> dict[str, str]:
        """The form's values read back from an item."""
        values = {name: str(item.get(element) or "") for name, element in self.copied}
        values.update((name, text_of(item.get(element))) for name, element in self.named)
        return {**values, **self.reader(item)}

    def line(self, item: Mapping[str, Any], gettext: Gettext) -> Line:
        """An item as the profile lists it."""
        if self.lister is not None:
            return self.lister(item, gettext)
        label, detail, date = self.shows
        values = self.values_of(item)
        return Line(values[label], values.get(detail, ""), values.get(date, ""))


def since(name: str = "depuis", label: str = N_("Depuis"), *, required: bool = False) -> Field:
    """A date the day or month of which may be unknown (since when, when)."""
    return Field(name, label, "partial-date", required=required, hint=PARTIAL_DATE_HINT)


def patient_ref(patient_id: str) -> JSON:
    return {"reference": f"Patient/{patient_id}"}


def text_of(concept: Mapping[str, Any] | None) -> str:
    """A CodeableConcept's text, else its first coding's display."""
    if not concept:
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, Mapping) and coding.get("display"):
            return str(coding["display"])
    return ""


def code_in(concept: Mapping[str, Any] | None, system: str) -> str:
    """The code of ``concept``'s first coding of ``system`` ("" if none)."""
    for coding in (concept or {}).get("coding") or []:
        if isinstance(coding, Mapping) and coding.get("system") == system:
            return str(coding.get("code") or "")
    return ""


def concept(system: str, code: str, display: str, text: str | None = None) -> JSON:
    return {
        "coding": [{"system": system, "code": code, "display": display}],
        "text": text or display,
    }


def label_of(options: tuple[tuple[str, str], ...], value: str) -> str:
    """The (French) label of a select's value."""
    return next((label for code, label in options if code == value), "")


def shown_label(
    gettext: Gettext, options: tuple[tuple[str, str], ...], value: str, otherwise: str = ""
) -> str:
    """A select's value as a line shows it: its label in the page's language, else ``otherwise``
    (a value the list does not know, written elsewhere)."""
    label = label_of(options, value)
    return gettext(label) if label else otherwise


def decimal_text(value: Any) -> str:
    """A number back into the form, the French way (72,5)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace(".", ",")


def optional(body: JSON, key: str, value: Any) -> None:
    """Set ``key`` only when there is a value (FHIR has no empty elements)."""
    if value not in (None, "", [], {}):
        body[key] = value
