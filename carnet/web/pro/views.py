"""What the workspace's record page shows, read from the Bundles the caller's FHIR calls returned:
the patient's identity, the IPS synthesis by section, the documents and the latest results.

Pure functions of FHIR JSON (no service, no database): the page asked the services as its caller,
so everything here is already what the rules let this professional see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carnet.identity.ins import INS_SYSTEMS, InsStatus, InvalidTraits, traits_from_patient
from carnet.record.search_items import date_of, title_of
from carnet.web.i18n import N_
from carnet.web.profile.declared import is_declared

JSON = dict[str, Any]

# The IPS sections (carnet/fhir/operations/summary.py) by LOINC code, with their French titles.
SECTION_TITLES = {
    "11450-4": N_("Problèmes de santé"),
    "48765-2": N_("Allergies et intolérances"),
    "10160-0": N_("Traitements en cours"),
    "11369-6": N_("Vaccinations"),
    "30954-2": N_("Résultats"),
    "47519-4": N_("Actes et interventions"),
    "11348-0": N_("Antécédents"),
}
# Observation.interpretation codes (v3 ObservationInterpretation) in words.
FLAGS = {
    "H": N_("élevé"),
    "HH": N_("très élevé"),
    "L": N_("bas"),
    "LL": N_("très bas"),
    "A": N_("anormal"),
    "AA": N_("très anormal"),
    "N": N_("dans les normes"),
}
SEXES = {"M": N_("homme"), "F": N_("femme")}
# Document classes (CI-SIS JDV_J06) for the document types Carnet writes (LOINC, JDV_J07).
CLASS_OF_TYPE = {
    "11488-4": N_("Compte rendu"),
    "34133-9": N_("Compte rendu"),
    "11502-2": N_("Résultat d'examen"),
    "18748-4": N_("Imagerie médicale"),
    "57833-6": N_("Ordonnance"),
}


@dataclass(frozen=True)
class PatientCard:
    patient_id: str
    name: str
    birth_date: str | None
    sex: str | None
    ins: str | None
    qualified: bool


@dataclass(frozen=True)
class SynthesisItem:
    label: str
    detail: str
    date: str | None
    declared: bool = False  # the patient declared it (their medical profile)


@dataclass(frozen=True)
class SynthesisSection:
    code: str
    title: str
    items: list[SynthesisItem]


@dataclass(frozen=True)
class DocumentRow:
    res_id: str
    type: str
    klass: str
    author: str
    organisation: str
    date: str | None
    has_content: bool
    declared: bool = False


@dataclass(frozen=True)
class ResultRow:
    label: str
    value: float | str
    unit: str
    reference: str  # the range as written (its text), else "" and the bounds below
    flag: str
    date: str | None
    low: float | None = None
    high: float | None = None

    @property
    def numeric(self) -> bool:
        return not isinstance(self.value, str)


def patient_card(patient: JSON) -> PatientCard:
    """Name, birth date, sex and INS; ``qualified`` only for a QUAL identity with its INS."""
    try:
        traits = traits_from_patient(patient)
        name = f"{traits.birth_name} {' '.join(traits.given_names)}"
        sex: str | None = traits.sex
    except InvalidTraits:
        name = _human_name(patient)
        sex = {"male": "M", "female": "F"}.get(str(patient.get("gender")))
    ins = next(
        (
            str(i.get("value"))
            for i in patient.get("identifier") or []
            if isinstance(i, dict) and i.get("system") in INS_SYSTEMS
        ),
        None,
    )
    status = _reliability(patient)
    return PatientCard(
        str(patient.get("id")),
        name,
        patient.get("birthDate"),
        sex,
        ins,
        status == InsStatus.QUAL.value and ins is not None,
    )


def _human_name(patient: JSON) -> str:
    for name in patient.get("name") or []:
        if isinstance(name, dict):
            parts = [*(name.get("given") or []), name.get("family") or ""]
            text = " ".join(str(p) for p in parts if p) or str(name.get("text") or "")
            if text:
                return text
    return "—"


def _reliability(patient: JSON) -> str | None:
    for ext in patient.get("extension") or []:
        for sub in ext.get("extension") or [] if isinstance(ext, dict) else []:
            if isinstance(sub, dict) and sub.get("url") == "identityReliability":
                return str((sub.get("valueCoding") or {}).get("code"))
    return None


def by_reference(bundle: JSON) -> dict[str, JSON]:
    """The Bundle's resources by ``Type/id`` (and by full URL)."""
    found: dict[str, JSON] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        key = f"{resource.get('resourceType')}/{resource.get('id')}"
        found[key] = resource
        if entry.get("fullUrl"):
            found[str(entry["fullUrl"])] = resource
    return found


def _resolve(resources: dict[str, JSON], reference: str) -> JSON | None:
    if reference in resources:
        return resources[reference]
    tail = "/".join(reference.rsplit("/", 2)[-2:])
    return resources.get(tail)


def synthesis(summary: JSON) -> list[SynthesisSection]:
    """The IPS document's sections with their items, in the document's order."""
    resources = by_reference(summary)
    entries = summary.get("entry") or []
    composition = entries[0].get("resource", {}) if entries else {}
    sections = []
    for section in composition.get("section") or []:
        codings = (section.get("code") or {}).get("coding") or [{}]
        code = str(codings[0].get("code", ""))
        items = []
        for ref in section.get("entry") or []:
            body = _resolve(resources, str(ref.get("reference", "")))
            if body is not None:
                items.append(
                    SynthesisItem(
                        title_of(body) or "—", _detail(body), date_of(body), is_declared(body)
                    )
                )
        sections.append(
            SynthesisSection(code, SECTION_TITLES.get(code, section.get("title", "")), items)
        )
    return sections


def _detail(body: JSON) -> str:
    quantity = body.get("valueQuantity")
    if isinstance(quantity, dict) and "value" in quantity:
        return f"{quantity['value']} {quantity.get('unit', '')}".strip()
    for key in ("clinicalStatus", "criticality", "status"):
        value = body.get(key)
        if isinstance(value, dict):
            codings = value.get("coding") or [{}]
            return str(codings[0].get("code", ""))
        if isinstance(value, str) and key != "status":
            return value
    return ""


def documents(bundle: JSON) -> list[DocumentRow]:
    """The DocumentReferences of a search Bundle (authors and custodians included)."""
    resources = by_reference(bundle)
    rows = []
    for entry in bundle.get("entry") or []:
        if (entry.get("search") or {}).get("mode") == "include":
            continue
        doc = entry.get("resource") or {}
        if doc.get("resourceType") != "DocumentReference":
            continue
        type_code = next(
            (str(c.get("code")) for c in (doc.get("type") or {}).get("coding") or []), ""
        )
        category = title_of({"category": doc.get("category")}) if doc.get("category") else ""
        authors = [_who(resources, a) for a in doc.get("author") or []]
        rows.append(
            DocumentRow(
                str(doc.get("id")),
                title_of({"type": doc.get("type")}) or str(doc.get("description") or "—"),
                category or CLASS_OF_TYPE.get(type_code, N_("Autres")),
                ", ".join(a for a in authors if a) or "—",
                _who(resources, doc.get("custodian") or {}) or "—",
                doc.get("date"),
                any(
                    isinstance(c, dict) and (c.get("attachment") or {}).get("data")
                    for c in doc.get("content") or []
                ),
                is_declared(doc),
            )
        )
    return rows


def _who(resources: dict[str, JSON], ref: JSON) -> str:
    if not isinstance(ref, dict):
        return ""
    if ref.get("display"):
        return str(ref["display"])
    body = _resolve(resources, str(ref.get("reference", "")))
    if body is None:
        return ""
    if body.get("resourceType") == "Organization":
        return str(body.get("name") or "")
    return _human_name(body) if body.get("name") else ""


def results(bundle: JSON) -> list[ResultRow]:
    """Observations with a value: label, value, unit, reference range and a flag in words."""
    rows = []
    for entry in bundle.get("entry") or []:
        obs = entry.get("resource") or {}
        if obs.get("resourceType") != "Observation":
            continue
        quantity = obs.get("valueQuantity") or {}
        value = quantity.get("value") if isinstance(quantity, dict) else None
        if value is None:
            value = obs.get("valueString")
        if not isinstance(value, int | float | str) or isinstance(value, bool):
            continue
        ranges = obs.get("referenceRange") or [{}]
        low = (ranges[0].get("low") or {}).get("value")
        high = (ranges[0].get("high") or {}).get("value")
        reference = ranges[0].get("text") or ""
        interpretation = obs.get("interpretation") or [{}]
        flag_code = next((str(c.get("code")) for c in (interpretation[0].get("coding") or [])), "")
        rows.append(
            ResultRow(
                title_of(obs) or "—",
                value,
                str(quantity.get("unit") or "") if isinstance(quantity, dict) else "",
                str(reference),
                FLAGS.get(flag_code, ""),
                date_of(obs),
                low if isinstance(low, int | float) else None,
                high if isinstance(high, int | float) else None,
            )
        )
    return rows
