"""The shared directory: fictional organisations and practitioners every patient refers to."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from faker import Faker

from carnet.demo.communes import COMMUNES, Commune
from carnet.demo.fhir_builders import JSON, address, concept, resource_id
from carnet.demo.systems import FINESS_SYSTEM, FR_V2_0203, ORG_TYPE, RPPS_SYSTEM


@dataclass(frozen=True)
class Practitioner:
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
class Organization:
    id: str
    kind: str
    name: str
    commune: Commune
    finess: str


@dataclass(frozen=True)
class Directory:
    organizations: tuple[Organization, ...]
    practitioners: tuple[Practitioner, ...]
    resources: tuple[JSON, ...] = field(repr=False)

    def by_role(self, *roles: str) -> list[Practitioner]:
        return [p for p in self.practitioners if p.role in roles]

    def by_kind(self, kind: str) -> list[Organization]:
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


def fictional_phone(rng: random.Random, mobile: bool) -> str:
    # 01 99 00 xx xx and 06 39 98 xx xx are ranges ARCEP reserves for fiction,
    # so no generated number can ring a real person.
    prefix = "06 39 98" if mobile else "01 99 00"
    return f"{prefix} {rng.randint(0, 99):02d} {rng.randint(0, 99):02d}"


def build_directory(seed: int) -> Directory:
    rng = random.Random(f"{seed}:shared")
    fake = Faker("fr_FR")
    fake.seed_instance(rng.getrandbits(64))

    organizations: list[Organization] = []
    resources: list[JSON] = []
    for index, (kind, pattern, insee) in enumerate(_ORGANIZATIONS):
        commune = _COMMUNES_BY_CODE[insee]
        oid = resource_id(seed, f"shared:organization:{index}")
        # FINESS-like: two-character department, six digits, then a Luhn digit.
        dept = commune.department[:2]
        body = f"{dept}{rng.randint(0, 999_999):06d}"
        finess = body + _luhn_digit(body.replace("2A", "20").replace("2B", "20"))
        org = Organization(oid, kind, pattern.format(city=commune.name), commune, finess)
        organizations.append(org)
        resources.append(
            {
                "resourceType": "Organization",
                "id": oid,
                "identifier": [
                    {
                        "use": "official",
                        "type": {"coding": [{"system": FR_V2_0203, "code": "FINEG"}]},
                        "system": FINESS_SYSTEM,
                        "value": finess,
                    }
                ],
                "active": True,
                "type": [concept(ORG_TYPE, "prov", "Healthcare Provider", _ORG_TYPE_TEXT[kind])],
                "name": org.name,
                "telecom": [
                    {"system": "phone", "value": fictional_phone(rng, False), "use": "work"}
                ],
                "address": [address(fake.street_address(), commune, "work")],
            }
        )

    practitioners: list[Practitioner] = []
    index = 0
    for role, count, male_title, female_title, is_doctor in _ROLES:
        for _ in range(count):
            gender = rng.choice(("male", "female"))
            given = fake.first_name_male() if gender == "male" else fake.first_name_female()
            family = fake.last_name()
            pid = resource_id(seed, f"shared:practitioner:{index}")
            title = male_title if gender == "male" else female_title
            prac = Practitioner(pid, role, title, gender, family, given, is_doctor)
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
                            "type": {"coding": [{"system": FR_V2_0203, "code": "IDNPS"}]},
                            "system": RPPS_SYSTEM,
                            "value": f"8{rpps}",
                        }
                    ],
                    "active": True,
                    "name": [name],
                    "telecom": [
                        {"system": "phone", "value": fictional_phone(rng, False), "use": "work"}
                    ],
                    "address": [address(fake.street_address(), workplace, "work")],
                    "gender": gender,
                    "qualification": [{"code": {"text": title}}],
                }
            )
            index += 1
    return Directory(tuple(organizations), tuple(practitioners), tuple(resources))
