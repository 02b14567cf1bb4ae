"""The reference identity register of the demo: the demo population's INS and traits, as the
INSi teleservice would verify them. It lives with the demo (the identity domain knows registers,
not how the demo makes its people)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from carnet.demo.population import DEFAULT_SEED, generate_population
from carnet.identity.register import InMemoryRegister
from carnet.identity.register_store import DatabaseRegister
from carnet.identity.service import IdentityService


def demo_register(count: int, seed: int | None = None) -> InMemoryRegister:
    """The register of the first ``count`` demo patients (same seed as the demo load)."""

    def patients() -> Iterable[dict[str, Any]]:
        for bundle in generate_population(count, DEFAULT_SEED if seed is None else seed):
            for entry in bundle["entry"]:
                if entry["resource"]["resourceType"] == "Patient":
                    yield entry["resource"]

    return InMemoryRegister.from_patients(patients())


def load_demo_register(mpi: IdentityService, count: int, seed: int | None = None) -> int:
    """Load the register with the first ``count`` demo patients' identities and use it from now on
    (the demo population's qualified INS are then verified as INSi would)."""
    register = DatabaseRegister(mpi.engine, mpi.data_keys, mpi.blind)
    loaded = register.load(demo_register(count, seed).records())
    mpi.register = register
    return loaded
