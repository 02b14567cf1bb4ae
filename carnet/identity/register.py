"""The reference identity register: a stand-in for the national INSi teleservice.

INSi answers a search by traits with one identity, none, or several (then the caller must not pick
one), and verifies that a matricule INS goes with given traits. :class:`IdentityRegister` is that
interface; :class:`InMemoryRegister` is the in-process implementation that tests pass in and that the
demo loads with its synthetic population. A client of the real teleservice implements the same
protocol.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from carnet.identity.ins import Ins, Traits, ins_from_patient, traits_from_patient

__all__ = [
    "IdentityRegister",
    "InMemoryRegister",
    "RegisterAnswer",
    "RegisterOutcome",
    "RegisterRecord",
]


class RegisterOutcome(StrEnum):
    """What a search by traits found."""

    ONE = "one"
    NONE = "none"
    SEVERAL = "several"


@dataclass(frozen=True)
class RegisterRecord:
    """An identity as the register holds it: the matricule and the reference traits."""

    ins: Ins
    traits: Traits
    replaced_by: Ins | None = None  # for an NIA: the NIR that replaced it


@dataclass(frozen=True)
class RegisterAnswer:
    """The answer to a search: the outcome and, for ONE, the identity."""

    outcome: RegisterOutcome
    record: RegisterRecord | None = None
    count: int = 0


class IdentityRegister(Protocol):
    """The INSi operations Carnet needs."""

    def search(self, traits: Traits) -> RegisterAnswer:
        """Find the identity with these traits (birth place is used only when given)."""
        ...

    def verify(self, ins: Ins, traits: Traits) -> bool:
        """Whether the register holds ``ins`` with exactly these traits."""
        ...

    def successor(self, ins: Ins) -> Ins | None:
        """The NIR that replaced this NIA, when the register says so; None otherwise."""
        ...


def _search_key(traits: Traits) -> tuple[str, str, str, str]:
    return (traits.birth_name, traits.first_given_name, traits.birth_date.isoformat(), traits.sex)


@dataclass
class InMemoryRegister:
    """An in-process register, indexed by (birth name, first first name, birth date, sex)."""

    _by_key: dict[tuple[str, str, str, str], list[RegisterRecord]] = field(
        default_factory=lambda: defaultdict(list)
    )
    _by_ins: dict[str, RegisterRecord] = field(default_factory=dict)

    def add(self, ins: Ins, traits: Traits) -> None:
        """Register an identity (replacing an earlier one with the same matricule)."""
        record = RegisterRecord(ins, traits)
        old = self._by_ins.get(ins.value)
        if old is not None:
            self._by_key[_search_key(old.traits)].remove(old)
        self._by_ins[ins.value] = record
        self._by_key[_search_key(traits)].append(record)

    def replace_nia(self, nia: Ins, nir: Ins) -> None:
        """Record that ``nia`` was replaced by ``nir`` (both must be registered)."""
        old = self._by_ins[nia.value]
        self._by_ins[nia.value] = RegisterRecord(old.ins, old.traits, nir)
        entries = self._by_key[_search_key(old.traits)]
        entries[entries.index(old)] = self._by_ins[nia.value]

    def successor(self, ins: Ins) -> Ins | None:
        """The NIR that replaced this NIA, if the register says so."""
        record = self._by_ins.get(ins.value)
        if record is None or record.ins.system != ins.system:
            return None
        return record.replaced_by

    def __len__(self) -> int:
        return len(self._by_ins)

    def records(self) -> list[RegisterRecord]:
        """Every identity the register holds."""
        return list(self._by_ins.values())

    def search(self, traits: Traits) -> RegisterAnswer:
        """INSi search by traits: one, none or several identities."""
        found = [
            r
            for r in self._by_key.get(_search_key(traits), [])
            if traits.birth_place is None or r.traits.birth_place == traits.birth_place
        ]
        if not found:
            return RegisterAnswer(RegisterOutcome.NONE)
        if len(found) > 1:
            return RegisterAnswer(RegisterOutcome.SEVERAL, count=len(found))
        return RegisterAnswer(RegisterOutcome.ONE, found[0], 1)

    def verify(self, ins: Ins, traits: Traits) -> bool:
        """INSi verification: the matricule exists and its traits are these."""
        record = self._by_ins.get(ins.value)
        return record is not None and record.ins.system == ins.system and record.traits == traits

    @classmethod
    def from_patients(cls, patients: Iterable[dict[str, Any]]) -> InMemoryRegister:
        """Load the Patients that carry an INS and valid traits (others are skipped)."""
        register = cls()
        for patient in patients:
            ins = ins_from_patient(patient)
            if ins is not None:
                register.add(ins, traits_from_patient(patient))
        return register
