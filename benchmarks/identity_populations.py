"""The identity populations the INS rule is about, and the Splink baseline on French records.

Populations (issue 12, section 1): each case is an index of one or two identities and one incoming
record; the goal is no false link at all, and for NIA then NIR a link (the register says the NIA
was replaced):

- ``homonyms_ins``: true homonyms (same birth name, first names, date and place), each with their
  own NIR; the index holds one, the other comes in.
- ``twins_same_first_name_ins``: twins given the same first name, their NIRs differing only in the
  order number.
- ``twins_partial_first_names_ins``: twins whose first names only partly overlap ("MARIE ANNE",
  "MARIE LOUISE"), NIRs differing only in the order number.
- ``twins_partial_first_names_no_ins``: the same twins, neither record carrying an INS.
- ``homonyms_incoming_without_ins``: the index holds two homonyms with their INS, a copy of one
  comes in without an INS: it fits both, so a link is a guess (counted as such: false when it
  names the wrong one, a "guess" otherwise).
- ``nia_then_nir``: the index holds an identity under its NIA, the same person comes in with the
  NIR that replaced it (the register says so): a link is right.

:func:`splink_links` runs Splink 5 (DuckDB) on the same records with the same fields, the INS as
one more exact-match comparison, so the figures sit side by side.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from faker import Faker

from carnet.demo.communes import COMMUNES
from carnet.identity.ins import INS_NIA_OID, INS_NIR_OID, Ins, normalise_name
from carnet.identity.nir import make_nir

POPULATIONS = (
    "homonyms_ins",
    "twins_same_first_name_ins",
    "twins_partial_first_names_ins",
    "twins_partial_first_names_no_ins",
    "homonyms_incoming_without_ins",
    "nia_then_nir",
)
# Where a link is the right answer (everywhere else any link to another person is false).
SHOULD_LINK = frozenset({"nia_then_nir"})


@dataclass(frozen=True)
class Case:
    """Index identities (truth, record) and one incoming record with its truth."""

    population: str
    index: tuple[tuple[str, dict[str, Any]], ...]
    truth: str
    incoming: dict[str, Any]


def _clean(name: str) -> str:
    try:
        return normalise_name(name)
    except ValueError:
        return "".join(c for c in name.upper() if c.isalpha()) or "X"


def _base(fake: Faker, rng: random.Random, sex: str) -> dict[str, Any]:
    first = fake.first_name_male if sex == "M" else fake.first_name_female
    return {
        "birth_name": _clean(fake.last_name()),
        "given_names": [_clean(first()), _clean(first())],
        "birth_date": date(1940, 1, 1) + timedelta(days=rng.randrange(70 * 365)),
        "sex": sex,
        "birth_place": rng.choice(COMMUNES).insee,
        "used_name": [],
        "ins": None,
    }


def _nir(record: Mapping[str, Any], order: int, *, nia: bool = False) -> tuple[str, str]:
    born: date = record["birth_date"]
    sex = (1 if record["sex"] == "M" else 2) + (6 if nia else 0)
    value = make_nir(sex, born.year, born.month, record["birth_place"], order)
    return (INS_NIA_OID if nia else INS_NIR_OID, value)


def generate_cases(per_population: int, seed: int = 21) -> tuple[list[Case], dict[Ins, Ins]]:
    """``per_population`` cases of each population, and the register's NIA -> NIR replacements."""
    rng = random.Random(seed)
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    cases: list[Case] = []
    replaced: dict[Ins, Ins] = {}
    for n in range(per_population):
        sex = rng.choice("MF")
        a = _base(fake, rng, sex)
        if a["given_names"][0] == a["given_names"][1]:
            a["given_names"] = a["given_names"][:1]
        order = rng.randrange(1, 990)
        # Homonyms: the very same traits, their own NIR (another order number, often more).
        b = {**a, "ins": _nir(a, order + rng.randrange(1, 9))}
        a_ins = {**a, "ins": _nir(a, order)}
        cases.append(Case("homonyms_ins", ((f"h{n}a", a_ins),), f"h{n}b", b))
        # Twins given the same first name.
        t = _base(fake, rng, sex)
        t_first = {**t, "given_names": t["given_names"][:1]}
        cases.append(
            Case(
                "twins_same_first_name_ins",
                ((f"s{n}a", {**t_first, "ins": _nir(t, order)}),),
                f"s{n}b",
                {**t_first, "ins": _nir(t, order + 1)},
            )
        )
        # Twins whose first names partly overlap.
        p = _base(fake, rng, sex)
        other = _clean(fake.first_name_male() if sex == "M" else fake.first_name_female())
        if other in p["given_names"]:
            other = other + "E" if sex == "F" else other + "S"
        sister = {**p, "given_names": [p["given_names"][0], other]}
        cases.append(
            Case(
                "twins_partial_first_names_ins",
                ((f"p{n}a", {**p, "ins": _nir(p, order)}),),
                f"p{n}b",
                {**sister, "ins": _nir(p, order + 1)},
            )
        )
        q = _base(fake, rng, sex)
        other_q = _clean(fake.first_name_male() if sex == "M" else fake.first_name_female())
        if other_q in q["given_names"]:
            other_q = other_q + "E" if sex == "F" else other_q + "S"
        cases.append(
            Case(
                "twins_partial_first_names_no_ins",
                ((f"q{n}a", q),),
                f"q{n}b",
                {**q, "given_names": [q["given_names"][0], other_q]},
            )
        )
        # Two homonyms with their INS; a copy of the first without one.
        h = _base(fake, rng, sex)
        cases.append(
            Case(
                "homonyms_incoming_without_ins",
                (
                    (f"w{n}a", {**h, "ins": _nir(h, order)}),
                    (f"w{n}b", {**h, "ins": _nir(h, order + 2)}),
                ),
                f"w{n}a",
                dict(h),
            )
        )
        # NIA first, then the NIR that replaced it.
        r = _base(fake, rng, sex)
        nia = _nir(r, order, nia=True)
        nir = _nir(r, order)
        replaced[Ins(*nia)] = Ins(*nir)
        cases.append(
            Case("nia_then_nir", ((f"n{n}a", {**r, "ins": nia}),), f"n{n}a", {**r, "ins": nir})
        )
    return cases, replaced


@dataclass
class Tally:
    """What the incoming records of one population became."""

    cases: int = 0
    right_links: int = 0
    false_links: int = 0
    guesses: int = 0  # a link to the right person when the record fits two people
    review: int = 0
    new: int = 0

    def row(self) -> str:
        return (
            f"{self.cases:>6} {self.false_links:>6} {self.guesses:>6} {self.right_links:>6} "
            f"{self.review:>6} {self.new:>6}"
        )


def tally(population: str, truth: str, linked_truth: str | None, outcome: str, t: Tally) -> None:
    """Count one decision (``outcome``: link, review or new) into ``t``."""
    t.cases += 1
    if outcome == "link":
        if linked_truth != truth:
            t.false_links += 1
        elif population == "homonyms_incoming_without_ins":
            t.guesses += 1
        else:
            t.right_links += 1
    elif outcome == "review":
        t.review += 1
    else:
        t.new += 1


# ---- Splink on the same records -------------------------------------------------------------------


def _frame(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "unique_id": uid,
                "birth_name": r["birth_name"],
                "first_name": (r["given_names"] or [None])[0],
                "other_names": " ".join(r["given_names"][1:]) or None,
                "birth_date": r["birth_date"].isoformat(),
                "sex": r["sex"],
                "birth_place": r["birth_place"],
                "ins": None if not r.get("ins") else r["ins"][1],
            }
            for uid, r in rows
        ]
    )


def splink_links(
    index: Sequence[tuple[str, Mapping[str, Any]]],
    incoming: Sequence[tuple[str, Mapping[str, Any]]],
    probability: float,
) -> dict[str, tuple[str, float]]:
    """Splink 5 on DuckDB, link only: each incoming id -> (best index id, match probability) for
    the pairs above ``probability``. Same fields as ours; u by random sampling, m by EM on two
    blocking rules, as its tutorials do."""
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    logging.disable(logging.WARNING)
    try:
        db = DuckDBAPI()
        tables = [
            db.register(_frame(index), table_name="idx"),
            db.register(_frame(incoming), table_name="inc"),
        ]
        settings = SettingsCreator(
            link_type="link_only",
            blocking_rules_to_generate_predictions=[
                block_on("birth_date", "sex"),
                block_on("birth_name", "first_name"),
                block_on("birth_place", "first_name"),
            ],
            comparisons=[
                cl.NameComparison("birth_name"),
                cl.NameComparison("first_name"),
                cl.ExactMatch("other_names"),
                cl.DateOfBirthComparison(
                    "birth_date", input_is_string=True, datetime_format="%Y-%m-%d"
                ),
                cl.ExactMatch("sex"),
                cl.ExactMatch("birth_place"),
                cl.ExactMatch("ins"),
            ],
        )
        linker = Linker(tables, settings)
        linker.training.estimate_probability_two_random_records_match(
            [
                "l.birth_name = r.birth_name and l.first_name = r.first_name "
                "and l.birth_date = r.birth_date"
            ],
            recall=0.8,
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=2e6)
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on("birth_date", "sex")
        )
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on("birth_name", "first_name")
        )
        found = linker.inference.predict(
            threshold_match_probability=probability
        ).as_pandas_dataframe()
    finally:
        logging.disable(logging.NOTSET)
    best: dict[str, tuple[str, float]] = {}
    for row in found.itertuples():
        left, right = str(row.unique_id_l), str(row.unique_id_r)
        source_l = str(row.source_dataset_l)
        ident, inc = (left, right) if source_l == "idx" else (right, left)
        p = float(row.match_probability)
        if inc not in best or p > best[inc][1]:
            best[inc] = (ident, p)
    return best
