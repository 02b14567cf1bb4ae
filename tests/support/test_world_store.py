"""A world written once (tests/support/world_store.py) is copied whole into each test: each copy
reads what the world wrote, under the world's keys, and a write in one copy is not in another."""

from __future__ import annotations

from pathlib import Path

import pytest

from carnet.app import Services, build_services
from tests.spec.helpers import patient
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.world_store import WorldStore

pytestmark = pytest.mark.both_backends


def _one_patient(services: Services) -> str:
    return services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id


def _patients(services: Services) -> int:
    found = services.fhir.search(
        "http://x/fhir", "Patient", [("_summary", "count")], ctx=AS_LOCAL_OPERATOR
    )
    return int(found["total"])


def test_each_copy_of_a_world_holds_the_world_and_only_its_own_writes(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    world = WorldStore(request, backend, _one_patient)
    first = build_services(world.copy_into(tmp_path / "one"), migrate=False)
    second = build_services(world.copy_into(tmp_path / "two"), migrate=False)
    try:
        # The world's patient reads back (its data key is under the copied keyring).
        assert first.fhir.read("Patient", world.ids, ctx=AS_LOCAL_OPERATOR).body is not None
        _one_patient(first)
        assert (_patients(first), _patients(second)) == (2, 1)
    finally:
        first.close()
        second.close()
