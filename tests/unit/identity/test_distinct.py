"""The rules that tell two identity records apart whatever their weights (carnet/identity/distinct.py)."""

from __future__ import annotations

from typing import Any

from carnet.identity.distinct import ins_differ, other_first_names_differ
from carnet.identity.ins import INS_NIA_OID, INS_NIR_OID, Ins
from carnet.identity.nir import make_nir

NIR_A = (INS_NIR_OID, make_nir(2, 1980, 5, "75056", 101))
NIR_B = (INS_NIR_OID, make_nir(2, 1980, 5, "75056", 102))
NIA = (INS_NIA_OID, make_nir(8, 1980, 5, "99134", 7))


def _names(*given: str) -> dict[str, Any]:
    return {"given_names": list(given)}


def test_two_valid_ins_that_differ_name_two_people() -> None:
    assert ins_differ({"ins": NIR_A}, {"ins": NIR_B})
    assert not ins_differ({"ins": NIR_A}, {"ins": NIR_A})
    assert not ins_differ({"ins": NIR_A}, {"ins": None})
    assert not ins_differ({}, {"ins": NIR_B})


def test_an_nia_replaced_by_a_nir_is_one_person_only_when_the_register_says_so() -> None:
    assert ins_differ({"ins": NIA}, {"ins": NIR_A})

    def register(ins: Ins) -> Ins | None:
        return Ins(*NIR_A) if ins == Ins(*NIA) else None

    assert not ins_differ({"ins": NIA}, {"ins": NIR_A}, register)
    assert not ins_differ({"ins": NIR_A}, {"ins": NIA}, register)
    assert ins_differ({"ins": NIA}, {"ins": NIR_B}, register)


def test_complete_first_name_lists_that_disagree_after_the_first_are_a_doubt() -> None:
    assert other_first_names_differ(_names("MARIE", "ANNE"), _names("MARIE", "LOUISE"))
    # Close spellings are twins' names as often as typos.
    assert other_first_names_differ(_names("STEPHANE", "AUGUSTE"), _names("STEPHANE", "AUGUSTIN"))


def test_a_list_cut_short_or_reordered_is_no_doubt() -> None:
    assert not other_first_names_differ(_names("MARIE", "ANNE"), _names("MARIE"))
    assert not other_first_names_differ(_names("MARIE", "ANNE", "LOUISE"), _names("MARIE", "ANNE"))
    assert not other_first_names_differ(_names("MARIE", "ANNE"), _names("ANNE", "MARIE"))
