"""Tests for the in-process reference identity register (the INSi stand-in)."""

from __future__ import annotations

from dataclasses import replace

from carnet.demo.register import demo_register
from carnet.identity.ins import INS_NIR_OID, Ins, Traits
from carnet.identity.nir import make_nir
from carnet.identity.register import (
    IdentityRegister,
    InMemoryRegister,
    RegisterOutcome,
)


def _traits(place: str = "75056", first: str = "JEAN") -> Traits:
    return Traits.create("DUPONT", [first, "PAUL"], "1985-07-14", "M", place)


def test_search_answers_one_none_or_several() -> None:
    register: IdentityRegister = InMemoryRegister()
    assert isinstance(register, InMemoryRegister)
    one = Ins(INS_NIR_OID, make_nir(1, 1985, 7, "75056", 1))
    register.add(one, _traits())
    answer = register.search(_traits())
    assert answer.outcome is RegisterOutcome.ONE
    assert answer.record is not None
    assert answer.record.ins == one
    assert register.search(_traits(first="JACQUES")).outcome is RegisterOutcome.NONE
    # Homonyms born the same day elsewhere: without a birth place the register cannot choose.
    register.add(Ins(INS_NIR_OID, make_nir(1, 1985, 7, "13055", 2)), _traits("13055"))
    assert register.search(replace(_traits(), birth_place=None)).outcome is RegisterOutcome.SEVERAL
    assert register.search(replace(_traits(), birth_place=None)).record is None
    assert register.search(_traits("13055")).outcome is RegisterOutcome.ONE


def test_verify_needs_the_same_traits() -> None:
    register = InMemoryRegister()
    ins = Ins(INS_NIR_OID, make_nir(1, 1985, 7, "75056", 1))
    register.add(ins, _traits())
    assert register.verify(ins, _traits())
    assert not register.verify(ins, _traits(first="JACQUES"))
    assert not register.verify(Ins(INS_NIR_OID, make_nir(1, 1985, 7, "75056", 3)), _traits())
    register.add(ins, _traits(first="JACQUES"))  # a correction replaces the entry
    assert len(register) == 1
    assert register.search(_traits()).outcome is RegisterOutcome.NONE


def test_demo_register_holds_the_demo_population() -> None:
    register = demo_register(20)
    assert len(register) == 20
