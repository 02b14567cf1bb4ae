"""Synthetic French identities with the errors identity vigilance meets, for tests and benchmarks.

:func:`generate_identities` returns people (the reference identities, as an index holds them) and,
for each, one copy as another system would send it, with realistic errors: typos in names,
inverted first names, a married name given as the birth name, a missing birth place, day and month
swapped, a wrong digit in the date. Twins (same everything but first names) and homonyms (same
names and birth date, another birth place) are added as distinct people: linking one to the other
is the error that must never happen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from faker import Faker

from carnet.demo.communes import COMMUNES, FOREIGN_COUNTRIES
from carnet.identity.ins import normalise_name

__all__ = ["SyntheticIdentity", "generate_identities"]


@dataclass
class SyntheticIdentity:
    """A person (``truth`` is the person's id) and what kind of record this is."""

    truth: str
    record: dict[str, Any]
    kind: str  # person, twin, homonym, or copy
    errors: list[str] = field(default_factory=list)


def _clean(name: str) -> str:
    try:
        return normalise_name(name)
    except ValueError:
        return "".join(c for c in name.upper() if c.isalpha()) or "X"


def _typo(rng: random.Random, name: str) -> str:
    if len(name) < 3:
        return name + name[-1]
    i = rng.randrange(1, len(name) - 1)
    op = rng.choice(("swap", "drop", "double", "replace"))
    if op == "swap":
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    if op == "drop":
        return name[:i] + name[i + 1 :]
    if op == "double":
        return name[:i] + name[i] + name[i:]
    letter = rng.choice("AEIOUNRSTL")
    return name[:i] + letter + name[i + 1 :]


def _person(fake: Faker, rng: random.Random) -> dict[str, Any]:
    sex = rng.choice("MF")
    first = fake.first_name_male if sex == "M" else fake.first_name_female
    given = [_clean(first())]
    for _ in range(rng.choice((0, 1, 1, 2))):
        extra = _clean(first())
        if extra not in given:
            given.append(extra)
    born = date(1930, 1, 1) + timedelta(days=rng.randrange(90 * 365))
    if rng.random() < 0.12:
        place = "99" + rng.choice(FOREIGN_COUNTRIES).code
    else:
        place = rng.choice(COMMUNES).insee
    return {
        "birth_name": _clean(fake.last_name()),
        "given_names": given,
        "birth_date": born,
        "sex": sex,
        "birth_place": place,
        "used_name": [],
    }


def _copy(
    fake: Faker, rng: random.Random, person: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    rec = {**person, "given_names": list(person["given_names"]), "used_name": []}
    errors: list[str] = []
    if rng.random() < 0.10:
        rec["birth_name"] = _typo(rng, rec["birth_name"])
        errors.append("birth_name_typo")
    if rng.random() < 0.10:
        rec["given_names"][0] = _typo(rng, rec["given_names"][0])
        errors.append("first_name_typo")
    if len(rec["given_names"]) > 1 and rng.random() < 0.10:
        rec["given_names"] = rec["given_names"][1:] + rec["given_names"][:1]
        errors.append("first_names_inverted")
    elif len(rec["given_names"]) > 1 and rng.random() < 0.15:
        rec["given_names"] = rec["given_names"][:1]
        errors.append("only_first_first_name")
    if rec["sex"] == "F" and rng.random() < 0.15:
        married = _clean(fake.last_name())
        if rng.random() < 0.3:
            rec["birth_name"] = married  # the usage name entered as the birth name
            errors.append("married_name_as_birth_name")
        else:
            rec["used_name"] = [married]
            errors.append("married_name_as_usage_name")
    if rng.random() < 0.15:
        rec["birth_place"] = None
        errors.append("birth_place_missing")
    born: date = rec["birth_date"]
    roll = rng.random()
    if roll < 0.03 and born.day <= 12 and born.day != born.month:
        rec["birth_date"] = born.replace(day=born.month, month=born.day)
        errors.append("day_month_swapped")
    elif roll < 0.06:
        field_ = rng.choice(("day", "month", "year"))
        try:
            if field_ == "day":
                rec["birth_date"] = born.replace(
                    day=rng.choice([d for d in range(1, 29) if d != born.day])
                )
            elif field_ == "month":
                rec["birth_date"] = born.replace(
                    month=rng.choice([m for m in range(1, 13) if m != born.month])
                )
            else:
                rec["birth_date"] = born.replace(year=born.year + rng.choice((-10, -1, 1, 10)))
            errors.append(f"{field_}_wrong")
        except ValueError:
            pass
    return rec, errors


def generate_identities(
    count: int, *, seed: int = 7, twins: float = 0.03, homonyms: float = 0.02
) -> tuple[list[SyntheticIdentity], list[SyntheticIdentity]]:
    """``count`` people (plus twins and homonyms) and one erroneous copy of each person.

    Returns ``(people, copies)``; a copy's ``truth`` is the id of the person it copies.
    """
    rng = random.Random(seed)
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    people: list[SyntheticIdentity] = []
    for i in range(count):
        person = _person(fake, rng)
        people.append(SyntheticIdentity(f"p{i}", person, "person"))
        if rng.random() < twins:
            twin = _person(fake, rng)
            twin.update(
                birth_name=person["birth_name"],
                birth_date=person["birth_date"],
                birth_place=person["birth_place"],
            )
            if twin["given_names"][0] == person["given_names"][0]:
                twin["given_names"][0] = _clean(fake.first_name())
            if twin["given_names"][0] != person["given_names"][0]:
                people.append(SyntheticIdentity(f"p{i}t", twin, "twin"))
        if rng.random() < homonyms:
            homonym = _person(fake, rng)
            homonym.update(
                birth_name=person["birth_name"],
                given_names=list(person["given_names"][:1]),
                birth_date=person["birth_date"],
                sex=person["sex"],
            )
            if homonym["birth_place"] != person["birth_place"]:
                people.append(SyntheticIdentity(f"p{i}h", homonym, "homonym"))
    copies = []
    for p in people:
        rec, errors = _copy(fake, rng, p.record)
        copies.append(SyntheticIdentity(p.truth, rec, "copy", errors))
    return people, copies
