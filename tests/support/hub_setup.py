"""A permit brought to life over HTTP, for the hub's functional tests: applied for by
RESEARCHER_A, submitted, reviewed and approved by REVIEWER_1, activated; optionally extracted."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from carnet.app import Services
from tests.support.auth import bearer
from tests.support.hub import (
    RESEARCHER_A,
    REVIEWER_1,
    application,
    fake_extractor,
    grant_roles,
    operator_ctx,
)

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
    hub.permits.extract(operator_ctx(), permit_id, fake_extractor, hub.extracts_dir)
    return permit_id
