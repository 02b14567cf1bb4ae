"""Synthetic French population as FHIR R4 transaction Bundles.

Everything here is invented: names come from Faker's French locale, phone numbers
from the ranges ARCEP reserves for fiction, e-mails from reserved example domains,
and NIRs are built with valid keys but random order numbers.  Output is fully
deterministic for a given seed so demo loads are reproducible.

Every entry is a ``PUT <Type>/<id>`` with an id derived by uuid5 from the seed and a
stable key, so loading the same bundles twice leaves the server unchanged.
"""

from __future__ import annotations

import base64
import random
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from faker import Faker

from carnet.demo.communes import COMMUNES, FOREIGN_COUNTRIES, Commune, ForeignCountry
from carnet.demo.pdf import make_pdf
from carnet.identity.nir import make_nir

__all__ = [
    "DEFAULT_SEED",
    "REFERENCE_DATE",
    "generate_population",
    "generate_shared_resources",
    "resource_id",
]

JSON = dict[str, Any]

DEFAULT_SEED: Final = 20261123
# All generated dates are strictly before this day.
REFERENCE_DATE: Final = date(2026, 11, 23)
# Health records are assumed digitised from this date; older events are not emitted.
_RECORDS_START: Final = date(2005, 1, 1)

# Fixed namespace so ids are stable across runs, machines and Python versions.
_ID_NAMESPACE: Final = uuid.UUID("6f1c8a52-3d0e-5b7a-9c4e-2a8d17f0b3e9")

# Identifier systems and code systems.
INS_NIR_SYSTEM: Final = "urn:oid:1.2.250.1.213.1.4.8"
RPPS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.2"
_FR_V2_0203: Final = "http://interopsante.org/fhir/CodeSystem/fr-v2-0203"
_BIRTH_PLACE_URL: Final = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
_INSEE_CODE_URL: Final = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
)
_COMMUNE_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
_LOINC: Final = "http://loinc.org"
_SNOMED: Final = "http://snomed.info/sct"
_UCUM: Final = "http://unitsofmeasure.org"
_ATC: Final = "http://www.whocc.no/atc"
_CVX: Final = "http://hl7.org/fhir/sid/cvx"
_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CONDITION_VER: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
_ALLERGY_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VER: Final = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_MARITAL: Final = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
_PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_ORG_TYPE: Final = "http://terminology.hl7.org/CodeSystem/organization-type"

# Local UTC offsets (hours) of overseas departments, which have no daylight saving.
_OVERSEAS_OFFSETS: Final = {"971": -4, "972": -4, "973": -3, "974": 4, "976": 3}


def resource_id(seed: int, key: str) -> str:
    """Return the deterministic id (uuid5) of the resource identified by ``seed`` and ``key``."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{seed}:{key}"))


def _ref(resource_type: str, rid: str) -> JSON:
    return {"reference": f"{resource_type}/{rid}"}


def _entry(resource: JSON) -> JSON:
    rtype = resource["resourceType"]
    rid = resource["id"]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
    }


def _bundle(resources: list[JSON]) -> JSON:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(r) for r in resources],
    }


def _coding(system: str, code: str, display: str) -> JSON:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str, text: str | None = None) -> JSON:
    concept: JSON = {"coding": [_coding(system, code, display)]}
    if text:
        concept["text"] = text
    return concept


def _quantity(value: float, unit: str, code: str) -> JSON:
    return {"value": value, "unit": unit, "system": _UCUM, "code": code}


# --------------------------------------------------------------------------- dates


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1) if month < 12 else date(year, 12, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def _paris_offset(moment: datetime) -> int:
    """UTC offset in hours of metropolitan France at a local time.

    Hand-coded rather than zoneinfo so the output never depends on the host's tz
    database.  Summer time started in 1976; until 1995 it ended in late September,
    since 1996 the EU rule ends it on the last Sunday of October.
    """
    year = moment.year
    if year < 1976:
        return 1
    start = datetime.combine(_last_sunday(year, 3), datetime.min.time()).replace(hour=2)
    end_month = 9 if year < 1996 else 10
    end = datetime.combine(_last_sunday(year, end_month), datetime.min.time()).replace(hour=3)
    return 2 if start <= moment < end else 1


def _format_datetime(moment: datetime, department: str) -> str:
    offset = _OVERSEAS_OFFSETS.get(department)
    if offset is None:
        offset = _paris_offset(moment)
    sign = "+" if offset >= 0 else "-"
    return f"{moment:%Y-%m-%dT%H:%M:%S}{sign}{abs(offset):02d}:00"


def _random_date(rng: random.Random, start: date, end: date) -> date:
    """A uniformly random day in [start, end] (end clipped to before the reference date)."""
    end = min(end, REFERENCE_DATE - timedelta(days=1))
    if end <= start:
        return start
    return start + timedelta(days=rng.randint(0, (end - start).days))


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year + years, day=28)


def _age(birth: date, on: date) -> float:
    return (on - birth).days / 365.25


# --------------------------------------------------------------------------- shared directory


@dataclass(frozen=True)
class _Practitioner:
    id: str
    role: str
    qualification: str
    gender: str
    family: str
    given: str
    is_doctor: bool

    @property
    def display(self) -> str:
        prefix = "Dr " if self.is_doctor else ""
        return f"{prefix}{self.given} {self.family}"


@dataclass(frozen=True)
class _Organization:
    id: str
    kind: str
    name: str
    commune: Commune
    finess: str


@dataclass(frozen=True)
class _Directory:
    organizations: tuple[_Organization, ...]
    practitioners: tuple[_Practitioner, ...]
    resources: tuple[JSON, ...] = field(repr=False)

    def by_role(self, *roles: str) -> list[_Practitioner]:
        return [p for p in self.practitioners if p.role in roles]

    def by_kind(self, kind: str) -> list[_Organization]:
        return [o for o in self.organizations if o.kind == kind]


# (role, count, male qualification, female qualification, is_doctor)
_ROLES: Final = (
    ("gp", 6, "Médecin généraliste", "Médecin généraliste", True),
    ("pediatrician", 2, "Pédiatre", "Pédiatre", True),
    ("cardiologist", 2, "Cardiologue", "Cardiologue", True),
    ("endocrinologist", 1, "Endocrinologue", "Endocrinologue", True),
    ("emergency", 2, "Médecin urgentiste", "Médecin urgentiste", True),
    ("psychiatrist", 1, "Psychiatre", "Psychiatre", True),
    ("pulmonologist", 1, "Pneumologue", "Pneumologue", True),
    ("nurse", 3, "Infirmier", "Infirmière", False),
    ("pharmacist", 1, "Pharmacien", "Pharmacienne", False),
    ("biologist", 1, "Biologiste médical", "Biologiste médicale", False),
)

# (kind, name pattern, INSEE code of the commune)
_ORGANIZATIONS: Final = (
    ("hospital", "Centre hospitalier universitaire de {city}", "69123"),
    ("hospital", "Centre hospitalier de {city}", "35238"),
    ("hospital", "Centre hospitalier de {city}", "13055"),
    ("hospital", "Centre hospitalier de {city}", "97411"),
    ("laboratory", "Laboratoire de biologie médicale de {city}", "75056"),
    ("laboratory", "Laboratoire d'analyses médicales de {city}", "33063"),
    ("laboratory", "Laboratoire de biologie médicale de {city}", "2A004"),
    ("pharmacy", "Pharmacie du Centre, {city}", "59350"),
    ("pharmacy", "Pharmacie de la Gare, {city}", "31555"),
    ("pharmacy", "Grande Pharmacie de {city}", "67482"),
)

_ORG_TYPE_TEXT: Final = {
    "hospital": "Établissement de santé",
    "laboratory": "Laboratoire de biologie médicale",
    "pharmacy": "Pharmacie d'officine",
}

_COMMUNES_BY_CODE: Final = {c.insee: c for c in COMMUNES}


def _luhn_digit(digits: str) -> str:
    """Luhn check digit, as used by FINESS and RPPS numbers."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def _fictional_phone(rng: random.Random, mobile: bool) -> str:
    # 01 99 00 xx xx and 06 39 98 xx xx are ranges ARCEP reserves for fiction,
    # so no generated number can ring a real person.
    prefix = "06 39 98" if mobile else "01 99 00"
    return f"{prefix} {rng.randint(0, 99):02d} {rng.randint(0, 99):02d}"


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if c.isascii()).lower()
    return "".join(c if c.isalnum() else "-" for c in plain).strip("-")


def _address(line: str, commune: Commune, use: str) -> JSON:
    return {
        "use": use,
        "type": "physical",
        "line": [line],
        "city": commune.name,
        "postalCode": commune.postal_code,
        "country": "FR",
    }


def _build_directory(seed: int) -> _Directory:
    rng = random.Random(f"{seed}:shared")
    fake = Faker("fr_FR")
    fake.seed_instance(rng.getrandbits(64))

    organizations: list[_Organization] = []
    resources: list[JSON] = []
    for index, (kind, pattern, insee) in enumerate(_ORGANIZATIONS):
        commune = _COMMUNES_BY_CODE[insee]
        oid = resource_id(seed, f"shared:organization:{index}")
        # FINESS-like: two-character department, six digits, then a Luhn digit.
        dept = commune.department[:2]
        body = f"{dept}{rng.randint(0, 999_999):06d}"
        finess = body + _luhn_digit(body.replace("2A", "20").replace("2B", "20"))
        org = _Organization(oid, kind, pattern.format(city=commune.name), commune, finess)
        organizations.append(org)
        resources.append(
            {
                "resourceType": "Organization",
                "id": oid,
                "identifier": [
                    {
                        "use": "official",
                        "type": {"coding": [{"system": _FR_V2_0203, "code": "FINEG"}]},
                        "system": FINESS_SYSTEM,
                        "value": finess,
                    }
                ],
                "active": True,
                "type": [_concept(_ORG_TYPE, "prov", "Healthcare Provider", _ORG_TYPE_TEXT[kind])],
                "name": org.name,
                "telecom": [
                    {"system": "phone", "value": _fictional_phone(rng, False), "use": "work"}
                ],
                "address": [_address(fake.street_address(), commune, "work")],
            }
        )

    practitioners: list[_Practitioner] = []
    index = 0
    for role, count, male_title, female_title, is_doctor in _ROLES:
        for _ in range(count):
            gender = rng.choice(("male", "female"))
            given = fake.first_name_male() if gender == "male" else fake.first_name_female()
            family = fake.last_name()
            pid = resource_id(seed, f"shared:practitioner:{index}")
            title = male_title if gender == "male" else female_title
            prac = _Practitioner(pid, role, title, gender, family, given, is_doctor)
            practitioners.append(prac)
            # RPPS-like: 11 digits starting with 10 and ending with a Luhn digit,
            # prefixed by "8" as in the national health professional identifier.
            rpps_body = f"10{rng.randint(0, 99_999_999):08d}"
            rpps = rpps_body + _luhn_digit(rpps_body)
            name: JSON = {"use": "official", "family": family, "given": [given]}
            if is_doctor:
                name["prefix"] = ["Dr"]
            workplace = rng.choice(organizations).commune
            resources.append(
                {
                    "resourceType": "Practitioner",
                    "id": pid,
                    "identifier": [
                        {
                            "use": "official",
                            "type": {"coding": [{"system": _FR_V2_0203, "code": "IDNPS"}]},
                            "system": RPPS_SYSTEM,
                            "value": f"8{rpps}",
                        }
                    ],
                    "active": True,
                    "name": [name],
                    "telecom": [
                        {"system": "phone", "value": _fictional_phone(rng, False), "use": "work"}
                    ],
                    "address": [_address(fake.street_address(), workplace, "work")],
                    "gender": gender,
                    "qualification": [{"code": {"text": title}}],
                }
            )
            index += 1
    return _Directory(tuple(organizations), tuple(practitioners), tuple(resources))


def generate_shared_resources(seed: int = DEFAULT_SEED) -> JSON:
    """Return one transaction Bundle with the shared Organizations and Practitioners.

    Patient bundles from :func:`generate_population` with the same seed reference
    these resources, so this bundle must be loaded first.
    """
    return _bundle(list(_build_directory(seed).resources))


# --------------------------------------------------------------------------- clinical catalogue


@dataclass(frozen=True)
class _Drug:
    atc: str
    display: str
    dosage: str


@dataclass(frozen=True)
class _ChronicCondition:
    snomed: str
    display: str
    text: str
    min_age: int
    # Prevalence as (age threshold, probability) pairs; the highest threshold <= age wins.
    prevalence: tuple[tuple[int, float], ...]
    drugs: tuple[_Drug, ...]
    specialist: str = "gp"
    female_factor: float = 1.0


@dataclass(frozen=True)
class _AcuteCondition:
    snomed: str
    display: str
    text: str
    drug: _Drug | None
    max_age: int = 120
    min_age: int = 0
    antibiotic: bool = False


_AMOXICILLIN: Final = _Drug(
    "J01CA04", "amoxicilline", "Amoxicilline 1 g, 1 comprimé matin et soir pendant 6 jours"
)
_AZITHROMYCIN: Final = _Drug(
    "J01FA10",
    "azithromycine",
    "Azithromycine 250 mg, 2 comprimés le premier jour puis 1 comprimé par jour pendant 4 jours",
)
_PARACETAMOL: Final = _Drug(
    "N02BE01",
    "paracétamol",
    "Paracétamol 1 g, 1 comprimé jusqu'à 3 fois par jour si douleur ou fièvre",
)

_CHRONIC: Final = (
    _ChronicCondition(
        "38341003",
        "Hypertensive disorder, systemic arterial (disorder)",
        "Hypertension artérielle",
        30,
        ((30, 0.05), (40, 0.2), (60, 0.45)),
        (
            _Drug("C09AA05", "ramipril", "Ramipril 5 mg, 1 comprimé le matin"),
            _Drug("C08CA01", "amlodipine", "Amlodipine 5 mg, 1 gélule par jour"),
        ),
        specialist="cardiologist",
    ),
    _ChronicCondition(
        "44054006",
        "Diabetes mellitus type 2 (disorder)",
        "Diabète de type 2",
        35,
        ((35, 0.03), (45, 0.08), (60, 0.16)),
        (
            _Drug(
                "A10BA02",
                "metformine",
                "Metformine 1000 mg, 1 comprimé matin et soir au milieu des repas",
            ),
        ),
        specialist="endocrinologist",
    ),
    _ChronicCondition(
        "46635009",
        "Diabetes mellitus type 1 (disorder)",
        "Diabète de type 1",
        3,
        ((3, 0.006),),
        (
            _Drug(
                "A10AE04",
                "insuline glargine",
                "Insuline glargine, 20 unités en injection sous-cutanée le soir",
            ),
        ),
        specialist="endocrinologist",
    ),
    _ChronicCondition(
        "55822004",
        "Hyperlipidemia (disorder)",
        "Hyperlipidémie",
        35,
        ((35, 0.05), (50, 0.2)),
        (_Drug("C10AA05", "atorvastatine", "Atorvastatine 20 mg, 1 comprimé le soir"),),
    ),
    _ChronicCondition(
        "195967001",
        "Asthma (disorder)",
        "Asthme",
        3,
        ((3, 0.08),),
        (
            _Drug(
                "R03AC02",
                "salbutamol",
                "Salbutamol 100 µg/dose, 2 inhalations en cas de gêne respiratoire",
            ),
        ),
        specialist="pulmonologist",
    ),
    _ChronicCondition(
        "35489007",
        "Depressive disorder (disorder)",
        "Épisode dépressif",
        15,
        ((15, 0.07),),
        (_Drug("N06AB10", "escitalopram", "Escitalopram 10 mg, 1 comprimé le matin"),),
        specialist="psychiatrist",
        female_factor=1.6,
    ),
    _ChronicCondition(
        "197480006",
        "Anxiety disorder (disorder)",
        "Trouble anxieux",
        15,
        ((15, 0.05),),
        (
            _Drug(
                "N05BA12",
                "alprazolam",
                "Alprazolam 0,25 mg, 1 comprimé le soir si besoin, 12 semaines au maximum",
            ),
        ),
        specialist="psychiatrist",
        female_factor=1.5,
    ),
    _ChronicCondition(
        "40930008",
        "Hypothyroidism (disorder)",
        "Hypothyroïdie",
        20,
        ((20, 0.015),),
        (
            _Drug(
                "H03AA01",
                "lévothyroxine sodique",
                "Lévothyroxine 75 µg, 1 comprimé le matin à jeun",
            ),
        ),
        specialist="endocrinologist",
        female_factor=4.0,
    ),
    _ChronicCondition(
        "49436004",
        "Atrial fibrillation (disorder)",
        "Fibrillation atriale",
        60,
        ((60, 0.05), (75, 0.1)),
        (
            _Drug(
                "B01AF01",
                "rivaroxaban",
                "Rivaroxaban 20 mg, 1 comprimé par jour au cours du repas du soir",
            ),
        ),
        specialist="cardiologist",
    ),
    _ChronicCondition(
        "13645005",
        "Chronic obstructive lung disease (disorder)",
        "Bronchopneumopathie chronique obstructive",
        45,
        ((45, 0.03), (60, 0.07)),
        (_Drug("R03BB04", "tiotropium", "Tiotropium 2,5 µg, 2 inhalations une fois par jour"),),
        specialist="pulmonologist",
    ),
    _ChronicCondition(
        "84114007",
        "Heart failure (disorder)",
        "Insuffisance cardiaque",
        60,
        ((60, 0.03), (75, 0.08)),
        (_Drug("C03CA01", "furosémide", "Furosémide 40 mg, 1 comprimé le matin"),),
        specialist="cardiologist",
    ),
    _ChronicCondition(
        "64859006",
        "Osteoporosis (disorder)",
        "Ostéoporose",
        55,
        ((55, 0.03), (70, 0.06)),
        (
            _Drug(
                "M05BA04",
                "acide alendronique",
                "Acide alendronique 70 mg, 1 comprimé une fois par semaine, à jeun",
            ),
        ),
        female_factor=4.0,
    ),
    _ChronicCondition(
        "396275006",
        "Osteoarthritis (disorder)",
        "Arthrose",
        50,
        ((50, 0.1), (65, 0.25)),
        (_PARACETAMOL,),
    ),
    _ChronicCondition(
        "37796009",
        "Migraine (disorder)",
        "Migraine",
        12,
        ((12, 0.05),),
        (
            _Drug(
                "N02CC01", "sumatriptan", "Sumatriptan 50 mg, 1 comprimé dès le début de la crise"
            ),
        ),
        female_factor=2.5,
    ),
    _ChronicCondition(
        "235595009",
        "Gastroesophageal reflux disease (disorder)",
        "Reflux gastro-œsophagien",
        18,
        ((18, 0.08),),
        (_Drug("A02BC01", "oméprazole", "Oméprazole 20 mg, 1 gélule le matin avant le repas"),),
    ),
    _ChronicCondition(
        "26929004",
        "Alzheimer's disease (disorder)",
        "Maladie d'Alzheimer",
        70,
        ((70, 0.04), (80, 0.1)),
        (_Drug("N06DA02", "donépézil", "Donépézil 5 mg, 1 comprimé le soir au coucher"),),
    ),
)

_OBESITY: Final = _ChronicCondition(
    "414916001", "Obesity (disorder)", "Obésité", 18, ((18, 0.0),), ()
)

_ACUTE_AMBULATORY: Final = (
    _AcuteCondition(
        "65363002", "Otitis media (disorder)", "Otite moyenne aiguë", _AMOXICILLIN, 12, 0, True
    ),
    _AcuteCondition(
        "195662009", "Acute viral pharyngitis (disorder)", "Rhinopharyngite", _PARACETAMOL
    ),
    _AcuteCondition(
        "43878008",
        "Streptococcal sore throat (disorder)",
        "Angine à streptocoque",
        _AMOXICILLIN,
        antibiotic=True,
    ),
    _AcuteCondition("10509002", "Acute bronchitis (disorder)", "Bronchite aiguë", _PARACETAMOL),
    _AcuteCondition("444814009", "Viral sinusitis (disorder)", "Sinusite virale", _PARACETAMOL),
    _AcuteCondition(
        "68566005",
        "Urinary tract infectious disease (disorder)",
        "Infection urinaire",
        _Drug("J01XX01", "fosfomycine", "Fosfomycine trométamol 3 g, 1 sachet en prise unique"),
        min_age=15,
    ),
)
_ACUTE_EMERGENCY: Final = (
    _AcuteCondition("44465007", "Sprain of ankle (disorder)", "Entorse de la cheville", None),
    _AcuteCondition(
        "65966004", "Fracture of forearm (disorder)", "Fracture de l'avant-bras", _PARACETAMOL
    ),
    _AcuteCondition(
        "233604007", "Pneumonia (disorder)", "Pneumopathie", _AMOXICILLIN, antibiotic=True
    ),
)
_COVID: Final = _AcuteCondition(
    "840539006",
    "Disease caused by severe acute respiratory syndrome coronavirus 2 (disorder)",
    "COVID-19",
    _PARACETAMOL,
)

# (SNOMED code, display, French text, category, criticality, manifestation)
_ALLERGIES: Final = (
    (
        "91936005",
        "Allergy to penicillin (finding)",
        "Allergie à la pénicilline",
        "medication",
        "high",
        ("126485001", "Urticaria (disorder)", "Urticaire"),
    ),
    (
        "91935009",
        "Allergy to peanut (finding)",
        "Allergie à l'arachide",
        "food",
        "high",
        ("39579001", "Anaphylaxis (disorder)", "Anaphylaxie"),
    ),
    (
        "300913006",
        "Shellfish allergy (finding)",
        "Allergie aux crustacés",
        "food",
        "low",
        ("271807003", "Eruption of skin (disorder)", "Éruption cutanée"),
    ),
    (
        "418689008",
        "Allergy to grass pollen (finding)",
        "Allergie aux pollens de graminées",
        "environment",
        "low",
        ("76067001", "Sneezing (finding)", "Éternuements"),
    ),
    (
        "232350006",
        "House dust mite allergy (finding)",
        "Allergie aux acariens",
        "environment",
        "low",
        ("267036007", "Dyspnea (finding)", "Dyspnée"),
    ),
)

# Vaccines: (CVX code, display, French text)
_VACCINES: Final = {
    "hexavalent": ("146", "DTaP,IPV,Hib,HepB", "Vaccin hexavalent DTCaP-Hib-HepB"),
    "pcv13": ("133", "Pneumococcal conjugate PCV 13", "Vaccin pneumococcique conjugué 13-valent"),
    "mmr": ("03", "MMR", "Vaccin rougeole-oreillons-rubéole"),
    "dtap_ipv": ("130", "DTaP-IPV", "Rappel DTCaP-Polio"),
    "hpv": ("165", "HPV9", "Vaccin papillomavirus 9-valent"),
    "tdap": ("115", "Tdap", "Rappel dTcaP adulte"),
    "td": ("113", "Td (adult) preservative free", "Rappel dTP adulte"),
    "flu": (
        "150",
        "Influenza, injectable, quadrivalent, preservative free",
        "Vaccin grippe saisonnière",
    ),
    "covid": (
        "208",
        "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose",
        "Vaccin COVID-19 à ARNm",
    ),
}

# French schedule: (vaccine, age in months at injection)
_CHILD_SCHEDULE: Final = (
    ("hexavalent", 2),
    ("pcv13", 2),
    ("hexavalent", 4),
    ("pcv13", 4),
    ("hexavalent", 11),
    ("pcv13", 11),
    ("mmr", 12),
    ("mmr", 16),
    ("dtap_ipv", 72),
    ("hpv", 132),
    ("hpv", 138),
    ("tdap", 300),
    ("td", 540),
    ("td", 780),
)


# --------------------------------------------------------------------------- patient builder


@dataclass
class _Context:
    """Mutable state while building one patient's bundle."""

    seed: int
    index: int
    rng: random.Random
    directory: _Directory
    patient_id: str
    department: str
    birth: date
    gender: str
    adult_height: float
    bmi: float
    resources: list[JSON] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def new_id(self, kind: str) -> str:
        number = self.counters.get(kind, 0)
        self.counters[kind] = number + 1
        return resource_id(self.seed, f"{self.index}:{kind}:{number}")

    def when(self, moment: datetime) -> str:
        return _format_datetime(moment, self.department)

    @property
    def subject(self) -> JSON:
        return _ref("Patient", self.patient_id)


def _prevalence(condition: _ChronicCondition, age: float, gender: str) -> float:
    if age < condition.min_age:
        return 0.0
    probability = 0.0
    for threshold, value in condition.prevalence:
        if age >= threshold:
            probability = value
    if gender == "female":
        # Scale so the population average stays close to the base rate.
        probability *= 2 * condition.female_factor / (1 + condition.female_factor)
    else:
        probability *= 2 / (1 + condition.female_factor)
    return min(probability, 0.9)


def _height_at(ctx: _Context, age: float) -> float:
    adult = ctx.adult_height
    adult_age = 16.0 if ctx.gender == "female" else 18.0
    # Piecewise-linear growth curve scaled to the patient's adult height.
    if age < 1:
        height = 50 + 25 * age
    elif age < 2:
        height = 75 + 12 * (age - 1)
    elif age < adult_age:
        height = 87 + (adult - 87) * (age - 2) / (adult_age - 2)
    else:
        height = adult - max(0.0, age - 70) * 0.15
    return round(height + ctx.rng.gauss(0, 0.4), 1)


def _weight_at(ctx: _Context, age: float, height_cm: float) -> float:
    if age < 1:
        weight = 3.4 + 6.5 * age + ctx.rng.gauss(0, 0.3)
    else:
        child_bmi = 16.0
        progress = min(1.0, max(0.0, (age - 6) / 12))
        bmi = child_bmi + (ctx.bmi - child_bmi) * progress + ctx.rng.gauss(0, 0.3)
        weight = bmi * (height_cm / 100) ** 2
    return round(max(weight, 2.0), 1)


def _observation(
    ctx: _Context,
    encounter_id: str,
    moment: datetime,
    category: str,
    code: tuple[str, str, str],
    value: JSON | None = None,
    performer: JSON | None = None,
) -> JSON:
    loinc, display, text = code
    obs: JSON = {
        "resourceType": "Observation",
        "id": ctx.new_id("observation"),
        "status": "final",
        "category": [
            _concept(
                _OBS_CATEGORY,
                category,
                "Vital Signs" if category == "vital-signs" else "Laboratory",
            )
        ],
        "code": _concept(_LOINC, loinc, display, text),
        "subject": ctx.subject,
        "encounter": _ref("Encounter", encounter_id),
        "effectiveDateTime": ctx.when(moment),
    }
    if performer is not None:
        obs["performer"] = [performer]
    if value is not None:
        obs["valueQuantity"] = value
    ctx.resources.append(obs)
    return obs


def _interpretation(value: float, low: float, high: float) -> JSON:
    if value < low:
        code, display = "L", "Low"
    elif value > high:
        code, display = "H", "High"
    else:
        code, display = "N", "Normal"
    return _concept(_INTERPRETATION, code, display)


def _lab(
    ctx: _Context,
    encounter_id: str,
    moment: datetime,
    code: tuple[str, str, str],
    value: float,
    unit: tuple[str, str],
    normal: tuple[float, float],
    lab: _Organization,
) -> dict[str, Any]:
    obs = _observation(
        ctx,
        encounter_id,
        moment,
        "laboratory",
        code,
        _quantity(value, *unit),
        _ref("Organization", lab.id),
    )
    obs["issued"] = ctx.when(moment + timedelta(hours=ctx.rng.randint(3, 8)))
    obs["interpretation"] = [_interpretation(value, *normal)]
    obs["referenceRange"] = [
        {"low": _quantity(normal[0], *unit), "high": _quantity(normal[1], *unit)}
    ]
    return obs


def _vitals(
    ctx: _Context,
    encounter_id: str,
    moment: datetime,
    practitioner: _Practitioner,
    hypertensive: bool,
    summary: list[str],
) -> None:
    age = _age(ctx.birth, moment.date())
    performer = _ref("Practitioner", practitioner.id)
    taken = moment + timedelta(minutes=5)
    height = _height_at(ctx, age)
    weight = _weight_at(ctx, age, height)
    if age < 18 or ctx.rng.random() < 0.4:
        _observation(
            ctx,
            encounter_id,
            taken,
            "vital-signs",
            ("8302-2", "Body height", "Taille"),
            _quantity(height, "cm", "cm"),
            performer,
        )
        summary.append(f"Taille : {height} cm")
    _observation(
        ctx,
        encounter_id,
        taken,
        "vital-signs",
        ("29463-7", "Body weight", "Poids"),
        _quantity(weight, "kg", "kg"),
        performer,
    )
    summary.append(f"Poids : {weight} kg")
    if age < 1:
        rate = ctx.rng.randint(110, 150)
    elif age < 6:
        rate = ctx.rng.randint(85, 120)
    else:
        rate = ctx.rng.randint(55, 95)
    _observation(
        ctx,
        encounter_id,
        taken,
        "vital-signs",
        ("8867-4", "Heart rate", "Fréquence cardiaque"),
        _quantity(rate, "/min", "/min"),
        performer,
    )
    summary.append(f"Fréquence cardiaque : {rate}/min")
    if age >= 3:
        if age < 18:
            systolic = round(ctx.rng.gauss(105, 8))
        else:
            systolic = round(ctx.rng.gauss(118 + max(0.0, age - 30) * 0.4, 10))
        if hypertensive:
            systolic += ctx.rng.randint(8, 25)
        diastolic = round(systolic * 0.62 + ctx.rng.gauss(0, 5))
        panel = _observation(
            ctx,
            encounter_id,
            taken,
            "vital-signs",
            ("85354-9", "Blood pressure panel with all children optional", "Pression artérielle"),
            None,
            performer,
        )
        panel["component"] = [
            {
                "code": _concept(_LOINC, "8480-6", "Systolic blood pressure", "Systolique"),
                "valueQuantity": _quantity(systolic, "mmHg", "mm[Hg]"),
            },
            {
                "code": _concept(_LOINC, "8462-4", "Diastolic blood pressure", "Diastolique"),
                "valueQuantity": _quantity(diastolic, "mmHg", "mm[Hg]"),
            },
        ]
        summary.append(f"Pression artérielle : {systolic}/{diastolic} mmHg")
    if age >= 18 and ctx.rng.random() < 0.5:
        bmi = round(weight / (height / 100) ** 2, 1)
        _observation(
            ctx,
            encounter_id,
            taken,
            "vital-signs",
            ("39156-5", "Body mass index (BMI) [Ratio]", "Indice de masse corporelle"),
            _quantity(bmi, "kg/m2", "kg/m2"),
            performer,
        )


def _condition(
    ctx: _Context,
    code: str,
    display: str,
    text: str,
    onset: datetime,
    recorder: _Practitioner,
    encounter_id: str | None,
    abatement: datetime | None,
) -> str:
    cid = ctx.new_id("condition")
    resolved = abatement is not None
    category = "encounter-diagnosis" if encounter_id else "problem-list-item"
    category_display = "Encounter Diagnosis" if encounter_id else "Problem List Item"
    resource: JSON = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": _concept(
            _CONDITION_CLINICAL,
            "resolved" if resolved else "active",
            "Resolved" if resolved else "Active",
        ),
        "verificationStatus": _concept(_CONDITION_VER, "confirmed", "Confirmed"),
        "category": [_concept(_CONDITION_CATEGORY, category, category_display)],
        "code": _concept(_SNOMED, code, display, text),
        "subject": ctx.subject,
        "onsetDateTime": ctx.when(onset),
        "recordedDate": ctx.when(onset),
        "recorder": _ref("Practitioner", recorder.id),
    }
    if encounter_id:
        resource["encounter"] = _ref("Encounter", encounter_id)
    if abatement is not None:
        resource["abatementDateTime"] = ctx.when(abatement)
    ctx.resources.append(resource)
    return cid


def _medication_request(
    ctx: _Context,
    drug: _Drug,
    authored: datetime,
    requester: _Practitioner,
    encounter_id: str,
    condition_id: str,
    active: bool,
) -> None:
    ctx.resources.append(
        {
            "resourceType": "MedicationRequest",
            "id": ctx.new_id("medicationrequest"),
            "status": "active" if active else "completed",
            "intent": "order",
            "medicationCodeableConcept": _concept(_ATC, drug.atc, drug.display, drug.display),
            "subject": ctx.subject,
            "encounter": _ref("Encounter", encounter_id),
            "authoredOn": ctx.when(authored),
            "requester": _ref("Practitioner", requester.id),
            "reasonReference": [_ref("Condition", condition_id)],
            "dosageInstruction": [{"text": drug.dosage}],
        }
    )


def _encounter_times(ctx: _Context, day: date, klass: str) -> tuple[datetime, datetime]:
    rng = ctx.rng
    if klass == "AMB":
        start = _at(day, rng.randint(8, 18), rng.choice((0, 15, 30, 45)))
        end = start + timedelta(minutes=rng.choice((15, 20, 30, 45)))
    elif klass == "EMER":
        start = _at(day, rng.randint(0, 23), rng.randint(0, 59))
        end = start + timedelta(minutes=rng.randint(90, 480))
    else:
        start = _at(day, rng.randint(8, 20), rng.randint(0, 59))
        end = start + timedelta(days=rng.randint(2, 9), hours=rng.randint(0, 6))
    # Nothing may end on or after the reference date.
    latest = _at(REFERENCE_DATE - timedelta(days=1), 23, 0)
    if end > latest:
        # Shorten rather than shift, so the start never moves before the birth date.
        end = latest
        start = min(start, end - timedelta(minutes=30))
    return start, end


_CLASS_DISPLAY: Final = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}
_CLASS_TEXT: Final = {
    "AMB": "Consultation",
    "EMER": "Passage aux urgences",
    "IMP": "Hospitalisation complète",
}


def _choose_allergies(ctx: _Context) -> list[tuple[Any, ...]]:
    if ctx.rng.random() >= 0.2:
        return []
    count = 2 if ctx.rng.random() < 0.15 else 1
    return ctx.rng.sample(list(_ALLERGIES), count)


def _allergy_resources(ctx: _Context, allergies: list[tuple[Any, ...]], gp: _Practitioner) -> None:
    for code, display, text, category, criticality, manifestation in allergies:
        recorded = _random_date(
            ctx.rng, max(ctx.birth + timedelta(days=180), _RECORDS_START), REFERENCE_DATE
        )
        man_code, man_display, man_text = manifestation
        ctx.resources.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": ctx.new_id("allergyintolerance"),
                "clinicalStatus": _concept(_ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": _concept(_ALLERGY_VER, "confirmed", "Confirmed"),
                "type": "allergy",
                "category": [category],
                "criticality": criticality,
                "code": _concept(_SNOMED, code, display, text),
                "patient": ctx.subject,
                "recordedDate": ctx.when(_at(recorded, ctx.rng.randint(8, 18), 0)),
                "recorder": _ref("Practitioner", gp.id),
                "reaction": [
                    {
                        "manifestation": [_concept(_SNOMED, man_code, man_display, man_text)],
                        "severity": "severe" if criticality == "high" else "mild",
                    }
                ],
            }
        )


def _immunizations(ctx: _Context, gp: _Practitioner) -> None:
    rng = ctx.rng
    doses: list[tuple[str, date]] = []
    for vaccine, months in _CHILD_SCHEDULE:
        day = ctx.birth + timedelta(days=int(months * 30.44) + rng.randint(0, 20))
        doses.append((vaccine, day))
    age_now = _age(ctx.birth, REFERENCE_DATE)
    if age_now >= 65:
        for season in range(2018, 2026):
            doses.append(("flu", date(season, rng.randint(10, 12), rng.randint(1, 28))))
    if rng.random() < 0.7:
        first = date(2021, rng.randint(2, 8), rng.randint(1, 28))
        if _age(ctx.birth, first) >= 18:
            doses.append(("covid", first))
            doses.append(("covid", first + timedelta(days=rng.randint(28, 42))))
    nurses = ctx.directory.by_role("nurse")
    pharmacists = ctx.directory.by_role("pharmacist")
    for vaccine, day in sorted(doses, key=lambda dose: dose[1]):
        if not (_RECORDS_START <= day < REFERENCE_DATE) or day <= ctx.birth:
            continue
        if vaccine == "hpv" and rng.random() < 0.4:
            continue  # HPV coverage is far from complete in France
        cvx, display, text = _VACCINES[vaccine]
        if vaccine == "flu":
            performer = rng.choice(pharmacists + nurses)
        elif vaccine == "covid":
            performer = rng.choice(nurses)
        else:
            performer = gp
        moment = _at(day, rng.randint(8, 18), rng.choice((0, 15, 30, 45)))
        letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
        ctx.resources.append(
            {
                "resourceType": "Immunization",
                "id": ctx.new_id("immunization"),
                "status": "completed",
                "vaccineCode": _concept(_CVX, cvx, display, text),
                "patient": ctx.subject,
                "occurrenceDateTime": ctx.when(moment),
                "primarySource": True,
                "lotNumber": f"{letters}{rng.randint(1000, 9999)}",
                "performer": [{"actor": _ref("Practitioner", performer.id)}],
            }
        )


@dataclass
class _ChronicState:
    condition: _ChronicCondition
    onset: date
    condition_id: str = ""
    drug: _Drug | None = None


def _patient_bundle(seed: int, index: int, directory: _Directory, fake: Faker) -> JSON:
    rng = random.Random(f"{seed}:{index}")
    fake.seed_instance(rng.getrandbits(64))

    gender = rng.choice(("male", "female"))
    age_years = min(96.0, rng.triangular(0, 96, 42))
    birth = REFERENCE_DATE - timedelta(days=int(age_years * 365.25) + rng.randint(60, 300))
    residence = rng.choice(COMMUNES)
    birth_commune: Commune | None
    country: ForeignCountry | None = None
    if rng.random() < 0.12:
        birth_commune = None
        country = rng.choice(FOREIGN_COUNTRIES)
        place = f"99{country.code}"
    else:
        birth_commune = residence if rng.random() < 0.6 else rng.choice(COMMUNES)
        place = birth_commune.insee
        if birth_commune.department in ("2A", "2B") and birth.year < 1976:
            # Corsica was a single department "20" before 1976; NIRs keep that code.
            place = "20" + place[2:]
    nir = make_nir(
        1 if gender == "male" else 2, birth.year, birth.month, place, rng.randint(1, 999)
    )

    patient_id = resource_id(seed, f"{index}:patient")
    ctx = _Context(
        seed=seed,
        index=index,
        rng=rng,
        directory=directory,
        patient_id=patient_id,
        department=residence.department,
        birth=birth,
        gender=gender,
        adult_height=rng.gauss(176.0, 7.0) if gender == "male" else rng.gauss(163.0, 6.5),
        bmi=min(42.0, max(17.5, rng.gauss(25.5, 4.5))),
    )
    age_now = _age(birth, REFERENCE_DATE)
    is_child = age_now < 16
    gp = rng.choice(directory.by_role("pediatrician" if is_child else "gp"))

    # ---- Patient
    first_names = fake.first_name_male if gender == "male" else fake.first_name_female
    given = [first_names()]
    for _ in range(rng.choice((0, 1, 1, 2))):
        extra = first_names()
        if extra not in given:
            given.append(extra)
    family = fake.last_name()
    names: list[JSON] = [{"use": "official", "family": family, "given": given}]
    marital: str | None = None
    if age_now >= 18:
        marital = rng.choices(("S", "M", "D", "W"), (40, 45, 10, 5 if age_now < 65 else 25))[0]
    if gender == "female" and marital in ("M", "W") and rng.random() < 0.7:
        # Married women often use their spouse's name; the INS keeps the birth name.
        names.append({"use": "usual", "family": fake.last_name(), "given": [given[0]]})

    telecom: list[JSON] = []
    if rng.random() < 0.85:
        telecom.append(
            {"system": "phone", "value": _fictional_phone(rng, mobile=True), "use": "mobile"}
        )
    if age_now >= 15 and rng.random() < 0.6:
        domain = rng.choice(("example.org", "example.com", "example.net"))
        local = f"{_ascii_slug(given[0])}.{_ascii_slug(family)}"
        telecom.append({"system": "email", "value": f"{local}@{domain}", "use": "home"})

    if birth_commune is not None:
        birth_address: JSON = {
            "extension": [
                {
                    "url": _INSEE_CODE_URL,
                    "valueCoding": {"system": _COMMUNE_SYSTEM, "code": birth_commune.insee},
                }
            ],
            "city": birth_commune.name,
            "postalCode": birth_commune.postal_code,
            "country": "FR",
        }
    else:
        assert country is not None
        birth_address = {"country": country.iso2}

    patient: JSON = {
        "resourceType": "Patient",
        "id": patient_id,
        "extension": [{"url": _BIRTH_PLACE_URL, "valueAddress": birth_address}],
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": _FR_V2_0203, "code": "INS-NIR"}]},
                "system": INS_NIR_SYSTEM,
                "value": nir,
            }
        ],
        "active": True,
        "name": names,
        "gender": gender,
        "birthDate": birth.isoformat(),
        "address": [_address(fake.street_address(), residence, "home")],
        "generalPractitioner": [_ref("Practitioner", gp.id)],
    }
    if telecom:
        patient["telecom"] = telecom
    if marital is not None:
        labels = {"S": "Never Married", "M": "Married", "D": "Divorced", "W": "Widowed"}
        patient["maritalStatus"] = _concept(_MARITAL, marital, labels[marital])
    ctx.resources.append(patient)

    # ---- Encounters: dates first, so conditions can be anchored to them.
    window_start = max(birth + timedelta(days=7), REFERENCE_DATE - timedelta(days=3650))
    count = rng.randint(2, 8)
    days = sorted(_random_date(rng, window_start, REFERENCE_DATE) for _ in range(count))
    classes = [rng.choices(("AMB", "EMER", "IMP"), (75, 15, 10))[0] for _ in days]
    last_day = days[-1]

    # ---- Chronic conditions, decided from the age at the last encounter.
    age_last = _age(birth, last_day)
    chronic: list[_ChronicState] = []
    for condition in _CHRONIC:
        if rng.random() < _prevalence(condition, age_last, gender):
            earliest = max(_add_years(birth, condition.min_age), birth + timedelta(days=30))
            chronic.append(_ChronicState(condition, _random_date(rng, earliest, last_day)))
    if age_last >= 18 and ctx.bmi >= 30:
        earliest = max(_add_years(birth, 18), last_day - timedelta(days=3650))
        chronic.append(_ChronicState(_OBESITY, _random_date(rng, earliest, last_day)))
    for state in chronic:
        onset = _at(state.onset, rng.randint(8, 18), 0)
        state.condition_id = _condition(
            ctx,
            state.condition.snomed,
            state.condition.display,
            state.condition.text,
            onset,
            gp,
            None,
            None,
        )
        if state.condition.drugs:
            state.drug = rng.choice(state.condition.drugs)

    allergies = _choose_allergies(ctx)
    penicillin_allergy = any(a[0] == "91936005" for a in allergies)
    hypertensive = any(s.condition.snomed == "38341003" for s in chronic)
    diabetes = {s.condition.snomed for s in chronic} & {"44054006", "46635009"}

    # ---- Encounters with their observations, diagnoses and prescriptions
    hospitals = directory.by_kind("hospital")
    labs = directory.by_kind("laboratory")
    document_source: tuple[str, datetime, _Practitioner, list[str], str] | None = None
    for number, (day, klass) in enumerate(zip(days, classes, strict=True)):
        encounter_id = ctx.new_id("encounter")
        start, end = _encounter_times(ctx, day, klass)
        age = _age(birth, day)
        followed = [s for s in chronic if s.onset <= day]
        if klass == "EMER":
            practitioner = rng.choice(directory.by_role("emergency"))
        elif klass == "IMP":
            # Hospital stays are led by the specialist of a followed disease, or by a
            # pulmonologist for the default cause of admission (pneumonia).
            specialists = [
                s.condition.specialist for s in followed if s.condition.specialist != "gp"
            ]
            role = rng.choice(specialists) if specialists else "pulmonologist"
            practitioner = rng.choice(directory.by_role(role))
        elif followed and rng.random() < 0.3:
            practitioner = rng.choice(directory.by_role(rng.choice(followed).condition.specialist))
        else:
            practitioner = gp
        summary: list[str] = [f"Motif : {_CLASS_TEXT[klass]}"]

        encounter: JSON = {
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": "finished",
            "class": _coding(_ACT_CODE, klass, _CLASS_DISPLAY[klass]),
            "type": [{"text": _CLASS_TEXT[klass]}],
            "subject": ctx.subject,
            "participant": [
                {
                    "type": [
                        _concept(_PARTICIPATION, "PPRF", "primary performer"),
                    ],
                    "individual": _ref("Practitioner", practitioner.id),
                }
            ],
            "period": {"start": ctx.when(start), "end": ctx.when(end)},
            "serviceProvider": _ref("Organization", rng.choice(hospitals).id),
        }
        ctx.resources.append(encounter)

        _vitals(ctx, encounter_id, start, practitioner, hypertensive, summary)

        # Acute problem diagnosed at this encounter?
        acute: _AcuteCondition | None = None
        if klass == "EMER":
            acute = rng.choice(_ACUTE_EMERGENCY)
        elif klass == "IMP":
            acute = _ACUTE_EMERGENCY[2] if not followed or rng.random() < 0.5 else None
        elif rng.random() < 0.45:
            if date(2020, 3, 1) <= day <= date(2023, 6, 30) and rng.random() < 0.25:
                acute = _COVID
            else:
                candidates = [
                    a
                    for a in _ACUTE_AMBULATORY
                    if a.min_age <= age <= a.max_age
                    and not (a.snomed == "68566005" and gender == "male")
                ]
                acute = rng.choice(candidates) if candidates else None
        reasons: list[JSON] = []
        if acute is not None:
            abatement = end + timedelta(days=rng.randint(7, 21))
            resolved = abatement.date() < REFERENCE_DATE
            condition_id = _condition(
                ctx,
                acute.snomed,
                acute.display,
                acute.text,
                start,
                practitioner,
                encounter_id,
                abatement if resolved else None,
            )
            reasons.append(_ref("Condition", condition_id))
            summary.append(f"Diagnostic : {acute.text}")
            drug = acute.drug
            if drug is not None and acute.antibiotic and penicillin_allergy:
                drug = _AZITHROMYCIN  # avoid prescribing a penicillin to an allergic patient
            if drug is not None and practitioner.is_doctor:
                _medication_request(
                    ctx,
                    drug,
                    end - timedelta(minutes=5),
                    practitioner,
                    encounter_id,
                    condition_id,
                    active=not resolved,
                )
                summary.append(f"Traitement : {drug.dosage}")
        for state in followed:
            reasons.append(_ref("Condition", state.condition_id))
            summary.append(f"Suivi : {state.condition.text}")
        if reasons:
            encounter["reasonReference"] = reasons

        # Chronic treatments are renewed at the last encounter, still active.
        if number == len(days) - 1 and practitioner.is_doctor:
            for state in followed:
                if state.drug is not None:
                    _medication_request(
                        ctx,
                        state.drug,
                        end - timedelta(minutes=2),
                        practitioner,
                        encounter_id,
                        state.condition_id,
                        active=True,
                    )
                    summary.append(f"Traitement : {state.drug.dosage}")

        # Labs: systematic for diabetics, otherwise occasional for adults.
        if (diabetes and followed) or (age >= 18 and rng.random() < 0.3):
            lab = rng.choice(labs)
            drawn = start + timedelta(minutes=20)
            diabetic_now = any(s.condition.snomed in diabetes for s in followed)
            glucose = round(rng.gauss(150, 30) if diabetic_now else rng.gauss(92, 8))
            _lab(
                ctx,
                encounter_id,
                drawn,
                ("2339-0", "Glucose [Mass/volume] in Blood", "Glycémie"),
                glucose,
                ("mg/dL", "mg/dL"),
                (70, 100),
                lab,
            )
            summary.append(f"Glycémie : {glucose} mg/dL")
            if diabetic_now or rng.random() < 0.3:
                hba1c = round(rng.gauss(7.3, 0.8) if diabetic_now else rng.gauss(5.3, 0.3), 1)
                _lab(
                    ctx,
                    encounter_id,
                    drawn,
                    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hémoglobine glyquée"),
                    hba1c,
                    ("%", "%"),
                    (4.0, 5.6),
                    lab,
                )
                summary.append(f"HbA1c : {hba1c} %")
            mean = 0.95 if gender == "male" else 0.75
            creatinine = round(max(0.3, rng.gauss(mean + max(0.0, age - 60) * 0.005, 0.12)), 2)
            normal = (0.7, 1.3) if gender == "male" else (0.5, 1.1)
            _lab(
                ctx,
                encounter_id,
                drawn,
                ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "Créatinine"),
                creatinine,
                ("mg/dL", "mg/dL"),
                normal,
                lab,
            )

        if klass in ("AMB", "IMP") and practitioner.is_doctor:
            document_source = (encounter_id, end, practitioner, summary, klass)

    _immunizations(ctx, gp)
    _allergy_resources(ctx, allergies, gp)

    # ---- About one patient in ten gets a consultation report as a PDF.
    if document_source is not None and rng.random() < 0.1:
        encounter_id, end, author, summary, klass = document_source
        _document(ctx, encounter_id, end, author, summary, klass, names[0], rng.choice(hospitals))

    return _bundle(ctx.resources)


def _document(
    ctx: _Context,
    encounter_id: str,
    end: datetime,
    author: _Practitioner,
    summary: list[str],
    klass: str,
    name: JSON,
    custodian: _Organization,
) -> None:
    if klass == "IMP":
        loinc, display, title = (
            "34133-9",
            "Summary of episode note",
            "Compte rendu d'hospitalisation",
        )
    else:
        loinc, display, title = "11488-4", "Consult note", "Compte rendu de consultation"
    written = end + timedelta(minutes=ctx.rng.randint(10, 90))
    if written.date() >= REFERENCE_DATE:
        written = end
    patient_line = f"Patient : {' '.join(name['given'])} {name['family']}"
    lines = [
        patient_line,
        f"Né(e) le : {ctx.birth.strftime('%d/%m/%Y')}",
        f"Date : {end.strftime('%d/%m/%Y')}",
        f"Auteur : {author.display}, {author.qualification}",
        "",
        *summary,
        "",
        "Document de démonstration - données entièrement synthétiques.",
    ]
    pdf = make_pdf(title, lines)
    when = ctx.when(written)
    ctx.resources.append(
        {
            "resourceType": "DocumentReference",
            "id": ctx.new_id("documentreference"),
            "status": "current",
            "docStatus": "final",
            "type": _concept(_LOINC, loinc, display, title),
            "subject": ctx.subject,
            "date": when,
            "author": [_ref("Practitioner", author.id)],
            "custodian": _ref("Organization", custodian.id),
            "description": title,
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "language": "fr-FR",
                        "data": base64.b64encode(pdf).decode("ascii"),
                        "size": len(pdf),
                        "title": f"{title} du {end.strftime('%d/%m/%Y')}",
                        "creation": when,
                    }
                }
            ],
            "context": {"encounter": [_ref("Encounter", encounter_id)]},
        }
    )


def generate_population(count: int, seed: int = DEFAULT_SEED) -> Iterator[JSON]:
    """Yield ``count`` FHIR R4 transaction Bundles, one synthetic patient each.

    Output is deterministic for a given seed, and patient ``i`` does not depend on
    ``count`` (each patient has its own random stream).  References to practitioners
    and organisations point at :func:`generate_shared_resources` with the same seed.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    directory = _build_directory(seed)
    fake = Faker("fr_FR")
    for index in range(count):
        yield _patient_bundle(seed, index, directory, fake)
