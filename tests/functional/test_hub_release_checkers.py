"""Nothing leaves a project without two independent output checkers: not the requester, not a
member of the project, not the same checker twice, not someone without the role; one refusal ends
the request; a request failing the automatic gates never reaches the checkers."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from carnet.app import Services
from carnet.caller import RequestContext
from carnet.hub.errors import HubError
from carnet.hub.omop.spec import ExtractionResult, ExtractionSpec
from tests.support.audit_log import logged_events
from tests.support.auth import bearer
from tests.support.hub import (
    CHECKER_1,
    CHECKER_2,
    OTHER_RESEARCHER,
    RESEARCHER_A,
    REVIEWER_1,
    TEAMMATE,
    fake_extractor,
    operator_ctx,
)
from tests.support.hub_setup import extracted_permit

TABLE = {"sql": "SELECT * FROM person", "rows": "gender_source_value", "columns": "year_of_birth"}


def _pending_release(client: TestClient, services: Services) -> str:
    permit_id = extracted_permit(client, services)
    asked = client.post(
        f"/hub/permits/{permit_id}/releases", json=TABLE, headers=bearer(services, RESEARCHER_A)
    )
    assert asked.json()["state"] == "pending"
    return str(asked.json()["id"])


def _review(
    client: TestClient, services: Services, who, release_id: str, decision: str = "approve"
):  # type: ignore[no-untyped-def]
    return client.post(
        f"/hub/releases/{release_id}/reviews",
        json={"decision": decision},
        headers=bearer(services, who),
    )


def test_the_requester_and_the_team_never_check_their_own_output(
    client: TestClient, services: Services
) -> None:
    release_id = _pending_release(client, services)
    assert _review(client, services, RESEARCHER_A, release_id).status_code == 403
    # TEAMMATE holds the output_checker role but is in the project
    assert _review(client, services, TEAMMATE, release_id).status_code == 403
    # no role and not of the project: the request is hidden from them, as a missing one
    assert _review(client, services, REVIEWER_1, release_id).status_code == 404
    assert (
        client.get(f"/hub/releases/{release_id}", headers=bearer(services, RESEARCHER_A)).json()[
            "approvals"
        ]
        == 0
    )


def test_a_release_request_hidden_from_an_outsider_answers_like_a_missing_one(
    client: TestClient, services: Services
) -> None:
    """A hidden item answers exactly like a missing one: GET /hub/releases/<id> answered an
    outsider (neither of the project nor a checker) 403 for an existing request and 404 for an
    unknown one, telling which ids exist; both are now the same audited 404."""
    release_id = _pending_release(client, services)
    for who in (OTHER_RESEARCHER, REVIEWER_1):
        before = len(logged_events(services))
        hidden = client.get(f"/hub/releases/{release_id}", headers=bearer(services, who))
        missing = client.get("/hub/releases/no-such-release", headers=bearer(services, who))
        assert hidden.status_code == missing.status_code == 404, who.subject
        assert hidden.text == missing.text, who.subject
        refused = [(e["action"], e["outcome"]) for e in logged_events(services)[before:]]
        assert refused == [("release-read", 404), ("release-read", 404)], who.subject
        for path in ("results.json", "output"):
            url = f"/hub/releases/{release_id}/{path}"
            assert client.get(url, headers=bearer(services, who)).status_code == 404, url
    seen = client.get(f"/hub/releases/{release_id}", headers=bearer(services, CHECKER_1))
    assert seen.status_code == 200


def test_a_decision_on_a_release_request_hidden_from_the_caller_answers_like_a_missing_one(
    client: TestClient, services: Services
) -> None:
    """A hidden item answers exactly like a missing one: a decision on a release request by an
    outsider (neither of the project nor a checker) answered 403 (only an output checker
    decides) for an existing request and 404 for an unknown one; both are the audited 404."""
    release_id = _pending_release(client, services)
    for who in (OTHER_RESEARCHER, REVIEWER_1):
        before = len(logged_events(services))
        hidden = _review(client, services, who, release_id)
        missing = _review(client, services, who, "no-such-release")
        assert hidden.status_code == missing.status_code == 404, who.subject
        assert hidden.text == missing.text, who.subject
        refused = [(e["action"], e["outcome"]) for e in logged_events(services)[before:]]
        assert refused == [("release-approve", 404), ("release-approve", 404)], who.subject
    seen = client.get(f"/hub/releases/{release_id}", headers=bearer(services, RESEARCHER_A))
    assert seen.json()["approvals"] == 0


def test_the_same_checker_twice_does_not_make_two_approvals(
    client: TestClient, services: Services
) -> None:
    release_id = _pending_release(client, services)
    assert _review(client, services, CHECKER_1, release_id).status_code == 200
    again = _review(client, services, CHECKER_1, release_id)
    assert again.status_code == 409
    state = client.get(f"/hub/releases/{release_id}", headers=bearer(services, CHECKER_1)).json()
    assert state["state"] == "pending"
    assert state["approvals"] == 1
    output = client.get(
        f"/hub/releases/{release_id}/output", headers=bearer(services, RESEARCHER_A)
    )
    assert output.status_code == 409


def test_one_refusal_ends_the_request(client: TestClient, services: Services) -> None:
    release_id = _pending_release(client, services)
    assert _review(client, services, CHECKER_1, release_id, "refuse").json()["state"] == "refused"
    assert _review(client, services, CHECKER_2, release_id).status_code == 409


def test_a_table_naming_persons_never_reaches_the_checkers(
    client: TestClient, services: Services
) -> None:
    release_id = _pending_release(client, services)
    permit_id = client.get(
        f"/hub/releases/{release_id}", headers=bearer(services, RESEARCHER_A)
    ).json()["permit"]
    asked = client.post(
        f"/hub/permits/{permit_id}/releases",
        json={**TABLE, "rows": "person_id"},
        headers=bearer(services, RESEARCHER_A),
    )
    assert asked.json()["state"] == "refused_by_gates"
    assert "names a person" in asked.json()["gateReasons"][0]
    assert _review(client, services, CHECKER_1, asked.json()["id"]).status_code == 409
    stored = client.get(f"/hub/releases/{asked.json()['id']}", headers=bearer(services, CHECKER_1))
    assert stored.json()["table"] is None  # nothing of it was kept


def test_a_bad_table_request_is_a_clear_error(client: TestClient, services: Services) -> None:
    release_id = _pending_release(client, services)
    permit_id = client.get(
        f"/hub/releases/{release_id}", headers=bearer(services, RESEARCHER_A)
    ).json()["permit"]
    for body in (
        {**TABLE, "sql": "DELETE FROM person"},
        {**TABLE, "rows": 'x"; DROP TABLE person; --'},
        {**TABLE, "statistic": "median"},
        {"sql": "SELECT * FROM person"},
    ):
        answer = client.post(
            f"/hub/permits/{permit_id}/releases", json=body, headers=bearer(services, RESEARCHER_A)
        )
        assert answer.status_code == 400, body
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_an_extract_whose_risk_report_blocks_release_releases_nothing(
    client: TestClient, services: Services
) -> None:
    release_id = _pending_release(client, services)
    permit_id = client.get(
        f"/hub/releases/{release_id}", headers=bearer(services, RESEARCHER_A)
    ).json()["permit"]

    def blocked(spec: ExtractionSpec) -> ExtractionResult:
        result = fake_extractor(spec)
        return replace(result, risk_report=replace(result.risk_report, release_blocked=True))

    hub = services.hub
    assert hub is not None
    hub.extracts.extract(operator_ctx(), permit_id, blocked, hub.extracts_dir)
    asked = client.post(
        f"/hub/permits/{permit_id}/releases", json=TABLE, headers=bearer(services, RESEARCHER_A)
    )
    assert asked.status_code == 409
    assert "risk report" in asked.text


def test_checkers_decisions_are_in_the_audit_log(client: TestClient, services: Services) -> None:
    release_id = _pending_release(client, services)
    _review(client, services, CHECKER_1, release_id)
    _review(client, services, RESEARCHER_A, release_id)
    _review(client, services, CHECKER_2, release_id)
    services.audit.flush()
    with services.engine.connect() as conn:
        bodies = [row[0] for row in conn.execute(text("SELECT body FROM audit_event"))]
    events = [orjson.loads(b) for b in bodies]
    seen = {
        (e["action"], e["outcome"], e["actor"]) for e in events if e["type"] == "ResearchRelease"
    }
    assert ("release-request", 200, RESEARCHER_A.subject) in seen
    assert ("release-approve", 200, CHECKER_1.subject) in seen
    assert ("release-approve", 403, RESEARCHER_A.subject) in seen
    assert ("release-approve", 200, CHECKER_2.subject) in seen


def test_a_release_request_is_bounded_in_time_like_a_query(
    client: TestClient, services: Services
) -> None:
    release_id = _pending_release(client, services)
    permit_id = client.get(
        f"/hub/releases/{release_id}", headers=bearer(services, RESEARCHER_A)
    ).json()["permit"]
    hub = services.hub
    assert hub is not None
    hub.workspace.seconds = 0.2
    endless = "SELECT range % 2 AS parity FROM range(100000000000)"
    asked = client.post(
        f"/hub/permits/{permit_id}/releases",
        json={"sql": endless, "rows": "parity"},
        headers=bearer(services, RESEARCHER_A),
    )
    assert asked.status_code == 408


@pytest.mark.both_backends  # the queue's and the project's listings are SQL of their own
def test_the_checkers_queue_and_the_projects_list_show_a_request_to_them_only(
    client: TestClient, services: Services
) -> None:
    release_id = _pending_release(client, services)
    hub = services.hub
    assert hub is not None
    permit_id = hub.releases.get(release_id).permit_id
    as_checker = RequestContext(CHECKER_1, CHECKER_1.subject, purpose="research")
    assert [r.release_id for r in hub.releases.queue(as_checker)] == [release_id]
    as_team = RequestContext(TEAMMATE, TEAMMATE.subject, purpose="research")
    assert [r.release_id for r in hub.releases.for_permit(as_team, permit_id)] == [release_id]
    as_reviewer = RequestContext(REVIEWER_1, REVIEWER_1.subject, purpose="research")
    with pytest.raises(HubError) as no_role:
        hub.releases.queue(as_reviewer)
    assert no_role.value.status == 403
    with pytest.raises(HubError) as not_theirs:
        hub.releases.for_permit(as_checker, permit_id)
    assert not_theirs.value.status == 404
    _review(client, services, CHECKER_1, release_id)
    (review,) = hub.releases.reviews_of(release_id)
    assert (review.checker, review.decision) == (CHECKER_1.subject, "approve")
