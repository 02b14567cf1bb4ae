"""Documents as the patient sees them: each DocumentReference's class (CI-SIS JDV_J06, the
classes of TRE_A03-ClasseDocument) derived from its type (JDV_J07, mostly LOINC) through the
type-to-class correspondence of the CI-SIS (ASS_X04), with French labels; a type the table does
not know goes to "Autres". A class already carried in ``category`` wins."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from carnet.web.i18n import N_
from carnet.web.profile.declared import is_declared

CLASS_SYSTEM = "urn:oid:1.2.250.1.213.1.1.4.1"  # TRE_A03-ClasseDocument-CISIS
LOINC = "http://loinc.org"
OTHER = "autres"

# JDV_J06 classes shown as groups, in this order (French labels are the message ids).
CLASSES: dict[str, str] = {
    "10": N_("Comptes rendus"),
    "11": N_("Synthèses"),
    "31": N_("Imagerie médicale"),
    "42": N_("Prescriptions"),
    "51": N_("Certificats et déclarations"),
    OTHER: N_("Autres"),
}

# A subset of the CI-SIS type-to-class correspondence (ASS_X04): JDV_J07 type code -> class.
TYPE_TO_CLASS: dict[str, str] = {
    "11488-4": "10",  # compte rendu de consultation
    "34112-3": "10",  # compte rendu d'hospitalisation
    "34133-9": "10",  # synthèse d'épisode (compte rendu de fin de séjour)
    "11502-2": "10",  # compte rendu d'examens biologiques
    "11526-1": "10",  # compte rendu d'anatomo-pathologie
    "34874-8": "10",  # compte rendu opératoire
    "60591-5": "11",  # synthèse médicale (volet de synthèse médicale)
    "18748-4": "31",  # compte rendu d'imagerie médicale
    "57833-6": "42",  # prescription de produits de santé
    "57832-8": "42",  # prescription de dispositifs ou d'examens
}


@dataclass(frozen=True)
class DocumentRow:
    """One document line of the list: ids, labels and dates only."""

    id: str
    title: str
    type_code: str | None
    class_code: str
    date: str  # FHIR dateTime, "" when the document has none
    author_ref: str | None
    author: str
    content_type: str | None
    declared: bool = False  # added by the patient (their upload, their advance directives)


def class_of(document: Mapping[str, Any]) -> str:
    """The document's JDV_J06 class code (a key of CLASSES)."""
    for category in document.get("category", []):
        for coding in category.get("coding", []):
            if coding.get("system") == CLASS_SYSTEM and coding.get("code") in CLASSES:
                return str(coding["code"])
    for coding in document.get("type", {}).get("coding", []):
        found = TYPE_TO_CLASS.get(str(coding.get("code")))
        if found is not None:
            return found
    return OTHER


def _text(concept: Mapping[str, Any]) -> str:
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display"):
            return str(coding["display"])
    return ""


def practitioner_name(resource: Mapping[str, Any]) -> str:
    """A practitioner's or organisation's display name, as the record holds it."""
    if resource.get("resourceType") == "Organization":
        return str(resource.get("name", ""))
    for name in resource.get("name", []):
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        return " ".join(p for p in parts if p)
    return ""


def rows(bundle: Mapping[str, Any]) -> list[DocumentRow]:
    """The documents of a searchset (authors from its included entries), newest first."""
    entries = [e.get("resource", {}) for e in bundle.get("entry", [])]
    people = {
        f"{r['resourceType']}/{r['id']}": practitioner_name(r)
        for r in entries
        if r.get("resourceType") in ("Practitioner", "Organization") and r.get("id")
    }
    out = []
    for doc in entries:
        if doc.get("resourceType") != "DocumentReference":
            continue
        authors = [a.get("reference") for a in doc.get("author", []) if a.get("reference")]
        author_ref = authors[0] if authors else None
        attachment = (doc.get("content") or [{}])[0].get("attachment", {})
        type_codes = [c.get("code") for c in doc.get("type", {}).get("coding", [])]
        out.append(
            DocumentRow(
                id=str(doc.get("id")),
                title=doc.get("description")
                or attachment.get("title")
                or _text(doc.get("type", {})),
                type_code=type_codes[0] if type_codes else None,
                class_code=class_of(doc),
                date=str(doc.get("date") or attachment.get("creation") or ""),
                author_ref=author_ref,
                author=people.get(author_ref or "", "")
                or (doc.get("author") or [{}])[0].get("display", ""),
                content_type=attachment.get("contentType"),
                declared=is_declared(doc),
            )
        )
    return sorted(out, key=lambda r: r.date, reverse=True)


@dataclass(frozen=True)
class Filters:
    """What the list is narrowed to: a class, an author (reference), a date range."""

    class_code: str = ""
    author: str = ""
    since: date | None = None
    until: date | None = None

    def keeps(self, row: DocumentRow) -> bool:
        if self.class_code and row.class_code != self.class_code:
            return False
        if self.author and row.author_ref != self.author:
            return False
        day = row.date[:10]
        if self.since and (not day or day < self.since.isoformat()):
            return False
        return not (self.until and (not day or day > self.until.isoformat()))


def grouped(documents: Iterable[DocumentRow]) -> list[tuple[str, list[DocumentRow]]]:
    """(class code, its documents newest first) in the order of CLASSES, empty groups left out."""
    groups: dict[str, list[DocumentRow]] = {code: [] for code in CLASSES}
    for row in documents:
        groups[row.class_code].append(row)
    return [(code, items) for code, items in groups.items() if items]


def authors(documents: Iterable[DocumentRow]) -> list[tuple[str, str]]:
    """(reference, name) of the documents' authors, for the author filter, sorted by name."""
    seen = {r.author_ref: r.author for r in documents if r.author_ref}
    return sorted(((ref, name or ref) for ref, name in seen.items()), key=lambda p: p[1])
