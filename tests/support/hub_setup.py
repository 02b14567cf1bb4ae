"""Shared setups of the hub's tests: a permit brought to life over HTTP (applied for by
RESEARCHER_A, submitted, reviewed and approved by REVIEWER_1, activated; optionally extracted),
and a small record store of people whose opt-out from research a test can switch on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from tests.support.auth import bearer
from tests.support.hub import (
    RESEARCHER_A,
    REVIEWER_1,
    application,
    fake_extractor,
    grant_roles,
    operator_ctx,
)
from tests.support.hub_store import PersonSpec, add_person, open_hub_services
from tests.support.migrated_store import SqliteTemplate

# who takes each step from draft to active
ACTIVATION = (
    (RESEARCHER_A, "submit"),
    (REVIEWER_1, "review"),
    (REVIEWER_1, "approve"),
    (RESEARCHER_A, "activate"),
)


def active_permit(client: TestClient, services: Services, **changes: Any) -> str:
    """The id of an active permit (hub roles granted); ``changes`` amend the application."""
    grant_roles(services)
    created = client.post(
        "/hub/permits", json=application(**changes), headers=bearer(services, RESEARCHER_A)
    )
    assert created.status_code == 201, created.text
    permit_id = str(created.json()["id"])
    for who, step in ACTIVATION:
        answer = client.post(
            f"/hub/permits/{permit_id}/steps/{step}", json={}, headers=bearer(services, who)
        )
        assert answer.status_code == 200, (step, answer.text)
    return permit_id


def extracted_permit(client: TestClient, services: Services) -> str:
    """An active permit with one extract of the fake extractor recorded."""
    permit_id = active_permit(client, services)
    hub = services.hub
    assert hub is not None
    hub.extracts.extract(operator_ctx(), permit_id, fake_extractor, hub.extracts_dir)
    return permit_id


@dataclass
class PeopleStore:
    """A record store of a few people (their Patient ids in order) for extraction tests."""

    services: Services
    patients: list[str]
    root: Path


@contextmanager
def people_store(
    root: Path, template: SqliteTemplate, people: list[PersonSpec]
) -> Iterator[PeopleStore]:
    """A copy of the migrated store under ``root`` with ``people`` added, closed on exit."""
    services = open_hub_services(root / "data", template)
    try:
        patients = [add_person(services, person, i) for i, person in enumerate(people)]
        yield PeopleStore(services, patients, root)
    finally:
        services.close()


def as_patient(patient_id: str, index: int) -> RequestContext:
    """The patient signed in to their own record (the account of ``add_person``'s index)."""
    account = f"account-{index}"
    return RequestContext(Principal(Kind.PERSON, account, patient_id=patient_id), account)


@contextmanager
def opted_out_of_research(store: PeopleStore, index: int) -> Iterator[str]:
    """The ``index``-th person opted out of research for the block (back in after it); their
    Patient id."""
    patient_id = store.patients[index]
    controls, caller = store.services.controls, as_patient(patient_id, index)
    controls.set_preferences(caller, patient_id, research_optout=True)
    try:
        yield patient_id
    finally:
        controls.set_preferences(caller, patient_id, research_optout=False)
