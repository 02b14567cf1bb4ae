"""INS (identité nationale de santé) rules: identifier systems, strict traits, statuses.

The INS is a NIR or NIA (the "matricule INS") plus five strict traits: birth name, the list of birth
first names (whose first element is the "premier prénom"), birth date, sex and INSEE birth place code.
The RNIV (référentiel national d'identitovigilance) writes the traits in upper case without diacritics;
only letters, spaces, hyphens and apostrophes are allowed.

An identity has one status:

- PROV: provisional, nothing checked;
- RECUP: the INS was retrieved from the INSi teleservice (traits from the register) but no identity
  document was checked;
- VALI: an identity document was checked, no INS retrieved;
- QUAL: both: the INS is qualified, and only then may it be transmitted or used to share data.

FHIR representation follows FR Core: the official HumanName holds the birth name and birth first
names, the ``patient-birthPlace`` extension holds the INSEE code (``district`` and the FR Core INSEE
code extension), and the ``fr-core-ident-reliability`` extension holds the status.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

from carnet.identity.nir import InvalidNIR, validate_nir

__all__ = [
    "BIRTH_PLACE_URL",
    "INSEE_CODE_URL",
    "INS_NIA_OID",
    "INS_NIR_OID",
    "INS_SYSTEMS",
    "RELIABILITY_SYSTEM",
    "RELIABILITY_URL",
    "Ins",
    "InsStatus",
    "InvalidIns",
    "InvalidTraits",
    "Traits",
    "apply_to_patient",
    "check_ins_identifiers",
    "ins_from_patient",
    "normalise_name",
    "status_for",
    "status_from_patient",
    "traits_from_patient",
    "transmitted_ins",
]

INS_NIR_OID: Final = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA_OID: Final = "urn:oid:1.2.250.1.213.1.4.9"
INS_TEST_OID: Final = "urn:oid:1.2.250.1.213.1.4.10"
INS_DEMO_OID: Final = "urn:oid:1.2.250.1.213.1.4.11"
# System -> kind of matricule, as the FR Core identifier type codes name it.
INS_SYSTEMS: Final = {
    INS_NIR_OID: "INS-NIR",
    INS_NIA_OID: "INS-NIA",
    INS_TEST_OID: "INS-NIR-TEST",
    INS_DEMO_OID: "INS-NIR-DEMO",
}
IDENTIFIER_TYPE_SYSTEM: Final = "http://interopsante.org/fhir/CodeSystem/fr-v2-0203"
BIRTH_PLACE_URL: Final = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_URL: Final = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
COMMUNE_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
RELIABILITY_URL: Final = (
    "http://interopsante.org/fhir/StructureDefinition/fr-core-ident-reliability"
)
RELIABILITY_SYSTEM: Final = "http://interopsante.org/fhir/CodeSystem/fr-v2-0445"

_SEXES: Final = {"male": "M", "female": "F"}
_GENDERS: Final = {v: k for k, v in _SEXES.items()}
# Letters the RNIV set (A-Z, space, hyphen, apostrophe) lacks and that Unicode decomposition does
# not reduce to a base letter plus accents: ligatures are spelt out, a barred or stroked letter is
# its base letter (as an accent is dropped), Icelandic thorn and eth are TH and D. Accented
# letters (Å, Ç, Ğ...) lose their accents by decomposition, as French letters do.
_LIGATURES: Final = str.maketrans(
    {
        "Œ": "OE",
        "œ": "OE",
        "Æ": "AE",
        "æ": "AE",
        "ß": "SS",
        "ẞ": "SS",
        "Ø": "O",
        "ø": "O",
        "Ł": "L",
        "ł": "L",
        "Đ": "D",
        "đ": "D",
        "Ð": "D",
        "ð": "D",
        "Þ": "TH",
        "þ": "TH",
        "Ħ": "H",
        "ħ": "H",
        "Ŧ": "T",
        "ŧ": "T",
        "ı": "I",
        "Ŀ": "L",
        "ŀ": "L",
        "Ŋ": "N",
        "ŋ": "N",
        "ĸ": "K",
    }
)
_APOSTROPHES: Final = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})
_ALLOWED: Final = re.compile(r"[A-Z '\-]*")
_INSEE_PLACE: Final = re.compile(r"(?:\d{2}|2A|2B)\d{3}")


class InvalidTraits(ValueError):  # noqa: N818 - the name reads as the domain term
    """Raised when strict identity traits break an INS rule; the message names the rule."""


class InvalidIns(InvalidTraits):
    """An INS identifier that breaks the NIR/NIA rules: refused wherever it comes in, never stored."""


class InsStatus(StrEnum):
    """Status of an identity, from least to most trusted."""

    PROV = "PROV"
    RECUP = "RECUP"
    VALI = "VALI"
    QUAL = "QUAL"


def status_for(*, retrieved_from_insi: bool, document_checked: bool) -> InsStatus:
    """The status an identity earns: QUAL needs both an INSi retrieval and a checked document."""
    if retrieved_from_insi and document_checked:
        return InsStatus.QUAL
    if retrieved_from_insi:
        return InsStatus.RECUP
    if document_checked:
        return InsStatus.VALI
    return InsStatus.PROV


def normalise_name(value: str, *, field: str = "name") -> str:
    """Write a name the RNIV way: upper case, no diacritics, single spaces.

    Letters outside the RNIV set are transliterated, not refused: ligatures spelt out (Œ, Æ, ß),
    stroked letters reduced to their base letter (Ø, Ł, Đ), thorn and eth written TH and D.

    Hyphens and apostrophes are kept without spaces around them; a double hyphen (the separator of a
    double family name, "MARTIN--DURAND") is kept, three or more are an error, as are digits and any
    other character. Leading and trailing separators are removed.

    Raises:
        InvalidTraits: if the value is empty after normalisation or holds a forbidden character.
    """
    text = value.translate(_LIGATURES).translate(_APOSTROPHES)
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r" *([-']) *", r"\1", text).strip(" -'")
    if not text:
        raise InvalidTraits(f"{field} is empty")
    if not _ALLOWED.fullmatch(text):
        bad = "".join(sorted({c for c in text if not _ALLOWED.fullmatch(c)}))
        raise InvalidTraits(
            f"{field} {value!r} contains {bad!r}; only letters, space, hyphen and apostrophe"
        )
    if "---" in text:
        raise InvalidTraits(f"{field} {value!r} has more than two hyphens in a row")
    if "''" in text or "-'" in text or "'-" in text:
        raise InvalidTraits(f"{field} {value!r} has two separators in a row")
    return text


@dataclass(frozen=True)
class Traits:
    """The five strict traits, normalised. Build with :meth:`create` to have the rules checked."""

    birth_name: str
    given_names: tuple[str, ...]
    birth_date: date
    sex: str  # "M" or "F"
    birth_place: str | None  # INSEE commune code, "99" + country code abroad, None if unknown

    @property
    def first_given_name(self) -> str:
        """The "premier prénom": the first of the birth first names."""
        return self.given_names[0]

    @classmethod
    def create(
        cls,
        birth_name: str,
        given_names: list[str] | tuple[str, ...] | str,
        birth_date: date | str,
        sex: str,
        birth_place: str | None,
        *,
        first_given_name: str | None = None,
        today: date | None = None,
    ) -> Traits:
        """Check and normalise raw traits.

        ``given_names`` may be a list or one string of space-separated names (as INSi returns it).
        ``first_given_name``, when given, must be the first of them.

        Raises:
            InvalidTraits: naming the first rule that fails.
        """
        name = normalise_name(birth_name, field="birth name")
        raw_given = given_names.split(" ") if isinstance(given_names, str) else list(given_names)
        given = tuple(normalise_name(g, field="first name") for g in raw_given if g.strip())
        if not given:
            raise InvalidTraits("birth first names are empty")
        if first_given_name is not None:
            first = normalise_name(first_given_name, field="first first name")
            if first != given[0]:
                raise InvalidTraits(
                    f"first first name {first!r} is not the first of the birth first names "
                    f"{' '.join(given)!r}"
                )
        if isinstance(birth_date, str):
            try:
                born = date.fromisoformat(birth_date)
            except ValueError:
                raise InvalidTraits(f"birth date {birth_date!r} is not a YYYY-MM-DD date") from None
        else:
            born = birth_date
        if born > (today or date.today()):
            raise InvalidTraits(f"birth date {born.isoformat()} is in the future")
        if born.year < 1850:
            raise InvalidTraits(f"birth date {born.isoformat()} is before 1850")
        code = _SEXES.get(sex, sex)
        if code not in _GENDERS:
            raise InvalidTraits(f"sex is {sex!r}, expected M or F (male or female)")
        place = None if birth_place in (None, "") else str(birth_place).upper()
        if place is not None and not _INSEE_PLACE.fullmatch(place):
            raise InvalidTraits(
                f"birth place {birth_place!r} is not an INSEE code (5 characters, 2A/2B allowed)"
            )
        return cls(name, given, born, code, place)


@dataclass(frozen=True)
class Ins:
    """A matricule INS with its system."""

    system: str
    value: str

    @classmethod
    def create(cls, system: str, value: str) -> Ins:
        """Check the system and the NIR/NIA.

        Raises:
            InvalidIns: for an unknown system or an invalid NIR/NIA (the NIR message is kept).
        """
        if system not in INS_SYSTEMS:
            raise InvalidIns(f"identifier system {system!r} is not an INS system")
        try:
            matricule = validate_nir(value)
        except InvalidNIR as exc:
            raise InvalidIns(f"INS {INS_SYSTEMS[system]}: {exc}") from None
        # An NIA (temporary number, sex digit 7 or 8) is not a NIR, nor a NIR an NIA: under the
        # other kind's system one person's matricule would be indexed as two INS (two people).
        if system == INS_NIR_OID and matricule[0] in "78":
            raise InvalidIns(
                f"INS INS-NIR: sex digit {matricule[0]} marks a temporary number (NIA), "
                "whose system is INS-NIA"
            )
        if system == INS_NIA_OID and matricule[0] in "12":
            raise InvalidIns(
                f"INS INS-NIA: sex digit {matricule[0]} marks a NIR, whose system is INS-NIR"
            )
        return cls(system, matricule)

    def agrees_with(self, traits: Traits) -> bool:
        """Whether the sex digit, year and month of the NIR agree with the traits."""
        if self.value[0] in "12" and self.value[0] != ("1" if traits.sex == "M" else "2"):
            return False
        if int(self.value[1:3]) != traits.birth_date.year % 100:
            return False
        month = int(self.value[3:5])
        return month > 12 or month == traits.birth_date.month


# ---- FHIR (FR Core) representation

JSON = dict[str, Any]


def _birth_place(patient: JSON) -> str | None:
    for ext in patient.get("extension", []):
        if ext.get("url") != BIRTH_PLACE_URL:
            continue
        address = ext.get("valueAddress") or {}
        for sub in address.get("extension", []):
            if sub.get("url") == INSEE_CODE_URL:
                code = (sub.get("valueCoding") or {}).get("code")
                if code:
                    return str(code)
        district = address.get("district")
        if district:
            return str(district)
        country = address.get("country")
        if country and country.upper() not in ("FR", "FRA"):
            return None
    return None


def traits_from_patient(patient: JSON, *, today: date | None = None) -> Traits:
    """Read the strict traits of a FHIR Patient (official name, gender, birthDate, birthPlace).

    Raises:
        InvalidTraits: when a trait is missing or breaks a rule.
    """
    names = patient.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), None)
    if official is None:
        raise InvalidTraits("Patient has no official name (birth name and birth first names)")
    if not official.get("family"):
        raise InvalidTraits("official name has no family (birth name)")
    given = official.get("given") or []
    if not given and official.get("text"):
        given = str(official["text"]).split(" ")
    if not patient.get("birthDate"):
        raise InvalidTraits("Patient has no birthDate")
    if patient.get("gender") not in _SEXES:
        raise InvalidTraits(f"gender is {patient.get('gender')!r}, expected male or female")
    return Traits.create(
        official["family"],
        given,
        patient["birthDate"],
        patient["gender"],
        _birth_place(patient),
        today=today,
    )


def status_from_patient(patient: JSON) -> InsStatus:
    """The identity status recorded on a Patient; PROV when absent (or FR Core's VIDE)."""
    for ext in patient.get("extension", []):
        if ext.get("url") != RELIABILITY_URL:
            continue
        for sub in ext.get("extension", []):
            if sub.get("url") == "identityReliability":
                code = (sub.get("valueCoding") or {}).get("code")
                if isinstance(code, str) and code in InsStatus.__members__:
                    return InsStatus(code)
    return InsStatus.PROV


def ins_from_patient(patient: JSON) -> Ins | None:
    """The INS identifier of a Patient, checked; None if it has none.

    Raises:
        InvalidIns: when an INS identifier is present but invalid.
    """
    found = check_ins_identifiers(patient)
    return found[0] if found else None


def check_ins_identifiers(patient: JSON) -> list[Ins]:
    """Every INS identifier of a Patient, each checked against the NIR/NIA rules.

    Raises:
        InvalidIns: naming the identifier (by position) and the rule it breaks; an identifier
            list or entry of the wrong shape counts as broken when it claims an INS system.
    """
    identifiers = patient.get("identifier") or []
    if not isinstance(identifiers, list):
        return []
    found = []
    for position, identifier in enumerate(identifiers):
        if not isinstance(identifier, dict) or identifier.get("system") not in INS_SYSTEMS:
            continue
        value = identifier.get("value")
        try:
            found.append(Ins.create(identifier["system"], value if isinstance(value, str) else ""))
        except InvalidIns as exc:
            raise InvalidIns(f"identifier[{position}]: {exc}") from None
    return found


def transmitted_ins(status: InsStatus, ins: Ins | None) -> Ins | None:
    """The INS that may leave Carnet: only a qualified identity's."""
    return ins if status is InsStatus.QUAL else None


def apply_to_patient(
    patient: JSON, traits: Traits, status: InsStatus, ins: Ins | None, *, outgoing: bool = True
) -> JSON:
    """Return a copy of ``patient`` carrying the traits, status and (if allowed) INS, FR Core way.

    With ``outgoing`` (the default) the INS identifier is written only for a QUAL identity, and any
    INS identifier already present is removed otherwise.
    """
    out = dict(patient)
    names = [n for n in out.get("name", []) if n.get("use") != "official"]
    out["name"] = [
        {"use": "official", "family": traits.birth_name, "given": list(traits.given_names)},
        *names,
    ]
    out["gender"] = _GENDERS[traits.sex]
    out["birthDate"] = traits.birth_date.isoformat()
    extensions = [
        e
        for e in out.get("extension", [])
        if e.get("url") not in (BIRTH_PLACE_URL, RELIABILITY_URL)
    ]
    if traits.birth_place is not None:
        address: JSON = {"district": traits.birth_place}
        if not traits.birth_place.startswith("99"):
            address["extension"] = [
                {
                    "url": INSEE_CODE_URL,
                    "valueCoding": {"system": COMMUNE_SYSTEM, "code": traits.birth_place},
                }
            ]
        extensions.append({"url": BIRTH_PLACE_URL, "valueAddress": address})
    extensions.append(
        {
            "url": RELIABILITY_URL,
            "extension": [
                {
                    "url": "identityReliability",
                    "valueCoding": {"system": RELIABILITY_SYSTEM, "code": status.value},
                }
            ],
        }
    )
    out["extension"] = extensions
    identifiers = [i for i in out.get("identifier", []) if i.get("system") not in INS_SYSTEMS]
    shown = transmitted_ins(status, ins) if outgoing else ins
    if shown is not None:
        identifiers.append(
            {
                "use": "official",
                "type": {
                    "coding": [
                        {"system": IDENTIFIER_TYPE_SYSTEM, "code": INS_SYSTEMS[shown.system]}
                    ]
                },
                "system": shown.system,
                "value": shown.value,
            }
        )
    if identifiers:
        out["identifier"] = identifiers
    else:
        out.pop("identifier", None)
    return out
