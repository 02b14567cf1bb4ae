"""The research hub's journey over HTTP: apply, review, approve, activate, extract, query,
request a release, automatic control, two independent approvals, publish results, and the public
register updated at each step; with the refusals that guard it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.hub.errors import HubError
from carnet.hub.omop.service import extract
from carnet.hub.omop.spec import ExtractionResult, ExtractionSpec
from carnet.hub.omop.uses import projects_that_included_me
from tests.support.audit_log import logged_events
from tests.support.auth import bearer
from tests.support.hub import (
    CHECKER_1,
    CHECKER_2,
    OTHER_RESEARCHER,
    RESEARCHER_A,
    REVIEWER_1,
    STRANGER,
    TEAMMATE,
    application,
    fake_extractor,
    grant_roles,
    operator_ctx,
    write_extract,
)
from tests.support.hub_setup import active_permit, extracted_permit
from tests.support.hub_store import PersonSpec, add_person

# the hub's tables and its audit events go through SQL that differs by backend
pytestmark = pytest.mark.both_backends


def _post(
    client: TestClient, services: Services, who: Principal, url: str, body: Any = None
) -> Any:
    return client.post(url, json=body if body is not None else {}, headers=bearer(services, who))


def test_full_journey_from_application_to_published_results(
    client: TestClient, services: Services
) -> None:
    grant_roles(services)
    created = _post(client, services, RESEARCHER_A, "/hub/permits", application())
    permit_id = created.json()["id"]
    assert created.json()["state"] == "draft"
    assert client.get("/hub/register", headers={"Authorization": ""}).json() == []

    submitted = _post(client, services, RESEARCHER_A, f"/hub/permits/{permit_id}/steps/submit")
    assert submitted.json()["clock"]["decisionDaysLeft"] in range(88, 93)  # three months
    _post(client, services, REVIEWER_1, f"/hub/permits/{permit_id}/steps/review")
    approved = _post(
        client,
        services,
        REVIEWER_1,
        f"/hub/permits/{permit_id}/steps/approve",
        {"conditions": "Pas de croisement avec d'autres sources", "validMonths": 12},
    )
    assert approved.json()["state"] == "approved"
    assert approved.json()["decidedBy"] == REVIEWER_1.subject
    _post(client, services, RESEARCHER_A, f"/hub/permits/{permit_id}/steps/activate")
    hub = services.hub
    assert hub is not None
    hub.extracts.extract(operator_ctx(), permit_id, fake_extractor, hub.extracts_dir)

    rows = _post(
        client,
        services,
        TEAMMATE,
        f"/hub/permits/{permit_id}/query",
        {"sql": "SELECT gender_source_value, count(*) AS n FROM person GROUP BY 1 ORDER BY 1"},
    )
    assert rows.status_code == 200, rows.text
    assert rows.json()["rows"] == [["F", 30], ["M", 20]]

    asked = _post(
        client,
        services,
        RESEARCHER_A,
        f"/hub/permits/{permit_id}/releases",
        {"sql": "SELECT * FROM person", "rows": "gender_source_value", "columns": "year_of_birth"},
    )
    assert asked.status_code == 201, asked.text
    release_id = asked.json()["id"]
    assert asked.json()["state"] == "pending", asked.json()["gateReasons"]
    assert asked.json()["status"] == "review"  # F/1950 (7) was suppressed

    first = _post(
        client, services, CHECKER_1, f"/hub/releases/{release_id}/reviews", {"decision": "approve"}
    )
    assert first.json()["state"] == "pending"
    assert (
        _post(client, services, RESEARCHER_A, f"/hub/releases/{release_id}/output").status_code
        == 405
    )
    assert (
        client.get(
            f"/hub/releases/{release_id}/output", headers=bearer(services, RESEARCHER_A)
        ).status_code
        == 409
    )
    second = _post(
        client,
        services,
        CHECKER_2,
        f"/hub/releases/{release_id}/reviews",
        {"decision": "approve", "comment": "ok"},
    )
    assert second.json()["state"] == "released"

    output = client.get(
        f"/hub/releases/{release_id}/output", headers=bearer(services, RESEARCHER_A)
    )
    assert output.status_code == 200
    table = {row["gender_source_value"]: row for row in output.json()}
    assert table["F"]["1950"] is None  # a true 7 never leaves, not even as 5
    assert table["M"]["1950"] == 10  # 12 -> 10
    assert table["F"]["1960"] == 25  # 23 -> 25
    assert table["M"]["1960"] == 10  # 8 -> 10
    assert table["total"]["total"] == 45  # recomputed from the released cells
    record = client.get(
        f"/hub/releases/{release_id}/results.json", headers=bearer(services, CHECKER_1)
    ).json()
    entry = record["results"][release_id]
    assert entry["files"][0]["sdc"]["cells"]["MinimumThresholdCheck"] == [[0, 0]]
    assert len(entry["comments"]) == 2

    published = _post(
        client,
        services,
        RESEARCHER_A,
        f"/hub/permits/{permit_id}/results",
        {"url": "https://hal.science/hal-0000001"},
    )
    assert published.status_code == 200
    register = client.get("/hub/register", headers={"Authorization": ""})
    assert register.status_code == 200
    (entry,) = register.json()
    assert entry["organisation"] == "Université de Bordeaux"
    assert entry["status"] == "active"
    assert entry["results"] == "https://hal.science/hal-0000001"
    assert RESEARCHER_A.subject not in register.text  # organisations, never persons
    page = client.get("/hub/register.html", headers={"Authorization": ""})
    assert page.status_code == 200
    assert "Université de Bordeaux" in page.text


def test_a_reviewer_never_decides_on_their_own_application(
    client: TestClient, services: Services
) -> None:
    grant_roles(services)
    permit_id = _post(client, services, RESEARCHER_A, "/hub/permits", application()).json()["id"]
    _post(client, services, RESEARCHER_A, f"/hub/permits/{permit_id}/steps/submit")
    # TEAMMATE holds the reviewer role but is in the application's team
    refused = _post(client, services, TEAMMATE, f"/hub/permits/{permit_id}/steps/review")
    assert refused.status_code == 403
    assert "own application" in refused.text
    # not a reviewer nor of the project: the permit is hidden from them, as a missing one
    assert (
        _post(
            client, services, OTHER_RESEARCHER, f"/hub/permits/{permit_id}/steps/review"
        ).status_code
        == 404
    )
    assert (
        _post(client, services, REVIEWER_1, f"/hub/permits/{permit_id}/steps/review").status_code
        == 200
    )
    assert (
        _post(client, services, TEAMMATE, f"/hub/permits/{permit_id}/steps/approve").status_code
        == 403
    )


def test_steps_out_of_order_are_refused_and_change_nothing(
    client: TestClient, services: Services
) -> None:
    grant_roles(services)
    permit_id = _post(client, services, RESEARCHER_A, "/hub/permits", application()).json()["id"]
    # A draft is hidden from reviewers: their step meets the 404 of a missing permit, not a 409
    # that would tell it exists.
    early = _post(client, services, REVIEWER_1, f"/hub/permits/{permit_id}/steps/approve")
    assert early.status_code == 404
    assert (
        _post(
            client, services, RESEARCHER_A, f"/hub/permits/{permit_id}/steps/activate"
        ).status_code
        == 409
    )
    mine = client.get(f"/hub/permits/{permit_id}", headers=bearer(services, RESEARCHER_A))
    assert mine.json()["state"] == "draft"
    # Once submitted, a reviewer sees it: approving before the review is the wrong state's 409.
    _post(client, services, RESEARCHER_A, f"/hub/permits/{permit_id}/steps/submit")
    early = _post(client, services, REVIEWER_1, f"/hub/permits/{permit_id}/steps/approve")
    assert early.status_code == 409
    mine = client.get(f"/hub/permits/{permit_id}", headers=bearer(services, RESEARCHER_A))
    assert mine.json()["state"] == "submitted"


def test_only_an_active_permit_is_extracted_and_a_refusal_is_audited(
    client: TestClient, services: Services
) -> None:
    grant_roles(services)
    permit_id = _post(client, services, RESEARCHER_A, "/hub/permits", application()).json()["id"]
    hub = services.hub
    assert hub is not None
    asked: list[ExtractionSpec] = []

    def extractor(spec: ExtractionSpec) -> ExtractionResult:
        asked.append(spec)
        return fake_extractor(spec)

    with pytest.raises(HubError) as refused:
        hub.extracts.extract(operator_ctx(), permit_id, extractor, hub.extracts_dir)
    assert refused.value.status == 409
    assert asked == [] and hub.extracts.latest_extract(permit_id) is None
    assert [
        e["outcome"]
        for e in logged_events(services)
        if e["action"] == "permit-extract" and any(permit_id in r for r in e["resources"])
    ] == [409]


def test_an_extraction_aimed_at_a_permit_that_does_not_exist_is_audited(
    services: Services,
) -> None:
    """Every hub step, allowed or refused, is one audit event: `carnet hub extract-permit` on a
    permit id that does not exist answered 404 and left no event (the made-up id unrecorded)."""
    hub = services.hub
    assert hub is not None
    before = len(logged_events(services))
    with pytest.raises(HubError) as refused:
        hub.extracts.extract(operator_ctx(), "no-such-permit", fake_extractor, hub.extracts_dir)
    assert refused.value.status == 404
    events = logged_events(services)[before:]
    assert [(e["action"], e["outcome"]) for e in events] == [("permit-extract", 404)]
    assert "no-such-permit" not in orjson.dumps(events).decode()


def test_a_draft_is_hidden_from_reviewers_as_a_missing_permit(
    client: TestClient, services: Services
) -> None:
    """A draft is its project's until submitted: reviewers' list and pages leave it out, but
    GET /hub/permits/<draft> served any reviewer the whole application."""
    grant_roles(services)
    draft = _post(client, services, RESEARCHER_A, "/hub/permits", application()).json()["id"]
    before = len(logged_events(services))
    hidden = client.get(f"/hub/permits/{draft}", headers=bearer(services, REVIEWER_1))
    missing = client.get("/hub/permits/no-such-permit", headers=bearer(services, REVIEWER_1))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text
    refused = [(e["action"], e["outcome"]) for e in logged_events(services)[before:]]
    assert refused == [("permit-read", 404), ("permit-read", 404)]
    assert (
        client.get(f"/hub/permits/{draft}", headers=bearer(services, RESEARCHER_A)).status_code
        == 200
    )
    _post(client, services, RESEARCHER_A, f"/hub/permits/{draft}/steps/submit")
    submitted = client.get(f"/hub/permits/{draft}", headers=bearer(services, REVIEWER_1))
    assert submitted.status_code == 200


def test_a_step_on_a_permit_the_caller_may_not_see_answers_like_a_missing_one(
    client: TestClient, services: Services
) -> None:
    """A hidden item answers exactly like a missing one: GET /hub/permits/<id> answers 404 to
    whoever may not see the permit, but a step on it (or its results' address) answered them
    403 (only the applicant, only a reviewer), telling which ids exist."""
    grant_roles(services)
    draft = _post(client, services, RESEARCHER_A, "/hub/permits", application()).json()["id"]
    body = {"url": "https://example.org/results"}
    tries = [
        (OTHER_RESEARCHER, "steps/submit", "permit-submit"),
        (STRANGER, "steps/approve", "permit-approve"),
        (REVIEWER_1, "steps/submit", "permit-submit"),  # a draft is its project's own
        (OTHER_RESEARCHER, "results", "permit-results"),
    ]
    for who, step, action in tries:
        before = len(logged_events(services))
        hidden = _post(client, services, who, f"/hub/permits/{draft}/{step}", body)
        missing = _post(client, services, who, f"/hub/permits/no-such-permit/{step}", body)
        assert hidden.status_code == missing.status_code == 404, (who.subject, step)
        assert hidden.text == missing.text, (who.subject, step)
        refused = [(e["action"], e["outcome"]) for e in logged_events(services)[before:]]
        assert refused == [(action, 404), (action, 404)], (who.subject, step)
    mine = client.get(f"/hub/permits/{draft}", headers=bearer(services, RESEARCHER_A))
    assert mine.json()["state"] == "draft"


def test_only_a_researcher_applies_and_bad_applications_are_refused(
    client: TestClient, services: Services
) -> None:
    grant_roles(services)
    assert _post(client, services, STRANGER, "/hub/permits", application()).status_code == 403
    bad = _post(client, services, RESEARCHER_A, "/hub/permits", application(variables={"note": []}))
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"
    assert _post(client, services, RESEARCHER_A, "/hub/permits", {"title": "x"}).status_code == 400
    assert client.get("/hub/permits", headers=bearer(services, RESEARCHER_A)).json() == []


def test_every_step_and_refusal_is_in_the_audit_log(client: TestClient, services: Services) -> None:
    permit_id = extracted_permit(client, services)
    _post(client, services, STRANGER, f"/hub/permits/{permit_id}/query", {"sql": "SELECT 1"})
    services.audit.flush()
    with services.engine.connect() as conn:
        from sqlalchemy import text

        bodies = [row[0] for row in conn.execute(text("SELECT body FROM audit_event"))]

    events = [orjson.loads(b) for b in bodies]
    hub_events = [
        (e["action"], e["outcome"], e["actor"]) for e in events if e["type"] == "ResearchPermit"
    ]
    actions = [a for a, _, _ in hub_events]
    for action in (
        "permit-apply",
        "permit-submit",
        "permit-review",
        "permit-approve",
        "permit-activate",
        "permit-extract",
    ):
        assert action in actions
    # A stranger may not see the permit: its workspace answers as a missing one's.
    assert ("workspace-query", 404, STRANGER.subject) in hub_events


def test_a_step_on_a_permit_or_release_that_does_not_exist_is_audited(
    client: TestClient, services: Services
) -> None:
    """A step, the results' address, a checker's decision or a read aimed at a permit or a
    release request that does not exist answered 404 and left no audit event: every step,
    allowed or refused, is one."""
    grant_roles(services)
    tries = [
        (RESEARCHER_A, "POST", "/hub/permits/no-such-permit/steps/submit", "permit-submit"),
        (REVIEWER_1, "POST", "/hub/permits/no-such-permit/steps/approve", "permit-approve"),
        (RESEARCHER_A, "POST", "/hub/permits/no-such-permit/results", "permit-results"),
        (CHECKER_1, "POST", "/hub/releases/no-such-release/reviews", "release-approve"),
        (CHECKER_1, "GET", "/hub/releases/no-such-release", "release-read"),
    ]
    body = {"url": "https://example.org/results", "decision": "approve"}
    for who, method, url, action in tries:
        before = len(logged_events(services))
        answer = client.request(method, url, json=body, headers=bearer(services, who))
        assert answer.status_code == 404, url
        refused = [
            (e["action"], e["outcome"], e["actor"]) for e in logged_events(services)[before:]
        ]
        assert refused == [(action, 404, who.subject)], url


def test_a_step_or_decision_the_hub_does_not_know_is_audited(
    client: TestClient, services: Services
) -> None:
    """Every step, allowed or refused, is one audit event: a step name or a checker's decision
    the hub does not know answered 400 and left no event (the words sent are not recorded)."""
    grant_roles(services)
    permit_id = _post(client, services, RESEARCHER_A, "/hub/permits", application()).json()["id"]
    tries = [
        (RESEARCHER_A, f"/hub/permits/{permit_id}/steps/publish-all", "permit-step"),
        (CHECKER_1, "/hub/releases/no-such-release/reviews", "release-review"),
    ]
    for who, url, action in tries:
        before = len(logged_events(services))
        body = {"decision": "release-all"}
        answer = client.post(url, json=body, headers=bearer(services, who))
        assert answer.status_code == 400, url
        events = logged_events(services)[before:]
        assert [(e["action"], e["outcome"], e["actor"]) for e in events] == [
            (action, 400, who.subject)
        ], url
        assert "-all" not in orjson.dumps(events).decode(), url


def test_a_workspace_action_on_a_permit_that_does_not_exist_is_audited_without_its_id(
    client: TestClient, services: Services
) -> None:
    """A refused step aimed at a permit that does not exist is recorded without the id the caller
    gave (docs/hub-permits.md): the workspace's query and release request wrote that free text
    (the URL's, any words) into the append-only log as a ResearchPermit id."""
    grant_roles(services)
    made_up = "Jeanne-Martin-1968"
    tries = [
        (f"/hub/permits/{made_up}/query", {"sql": "SELECT 1"}, "workspace-query"),
        (f"/hub/permits/{made_up}/releases", {"sql": "SELECT 1", "rows": "x"}, "release-request"),
    ]
    for url, body, action in tries:
        before = len(logged_events(services))
        answer = client.post(url, json=body, headers=bearer(services, RESEARCHER_A))
        assert answer.status_code == 404, url
        events = logged_events(services)[before:]
        assert [(e["action"], e["outcome"]) for e in events] == [(action, 404)], url
        assert made_up not in orjson.dumps(events).decode(), url


def test_the_catalogue_is_public_at_stable_urls(
    client: TestClient, services: Services, tmp_path: Path
) -> None:
    omop = tmp_path / "omop.duckdb"
    write_extract(omop, {("F", 1950): 20, ("M", 1980): 20})
    hub = services.hub
    assert hub is not None
    hub.catalogue.refresh(omop, date(2026, 12, 3))
    anonymous = {"Authorization": ""}
    listed = client.get("/hub/catalogue", headers=anonymous)
    assert listed.status_code == 200
    assert listed.json()[0]["id"] == "carnet-record"
    turtle = client.get("/hub/catalogue/carnet-record.ttl", headers=anonymous)
    assert turtle.headers["content-type"].startswith("text/turtle")
    assert "healthdcatap:hdab" in turtle.text
    jsonld = client.get("/hub/catalogue/carnet-record.jsonld", headers=anonymous)
    assert jsonld.headers["content-type"] == "application/ld+json"
    assert client.get("/hub/catalogue/unknown.ttl", headers=anonymous).status_code == 404


def test_only_the_operator_grants_hub_roles(client: TestClient, services: Services) -> None:
    grant = {"subject": "someone", "role": "reviewer"}
    refused = client.post("/hub/roles", json=grant, headers=bearer(services, RESEARCHER_A))
    assert refused.status_code == 403
    hub = services.hub
    assert hub is not None
    assert not hub.roles.holds("someone", "reviewer")
    assert client.post("/hub/roles", json=grant).status_code == 200  # the operator's client
    assert hub.roles.holds("someone", "reviewer")
    assert client.post("/hub/roles", json={"subject": "x", "role": "king"}).status_code == 400


def test_an_active_permit_is_extracted_by_the_real_extraction_and_queried_in_the_workspace(
    client: TestClient, services: Services
) -> None:
    # dates generalised to the year: a shifted birth date could cross into another year
    patients = [add_person(services, PersonSpec(birth="1960-06-15"), i) for i in range(6)]
    permit_id = active_permit(client, services, kThreshold=2, dates="year")

    def real_extractor(spec: ExtractionSpec) -> ExtractionResult:
        return extract(services, operator_ctx(), spec)

    hub = services.hub
    assert hub is not None
    result = hub.extracts.extract(operator_ctx(), permit_id, real_extractor, hub.extracts_dir)
    assert result.row_counts["person"] == 6 and not result.risk_report.release_blocked
    rows = _post(
        client,
        services,
        TEAMMATE,
        f"/hub/permits/{permit_id}/query",
        {"sql": "SELECT year_of_birth, count(*) AS n FROM person GROUP BY 1"},
    )
    assert rows.status_code == 200, rows.text
    assert rows.json()["rows"] == [[1960, 6]]
    me = RequestContext(Principal(Kind.PERSON, "acc-0", patient_id=patients[0]), "acc-0")
    uses = projects_that_included_me(services.engine, services.audit, me)
    assert [(u.title, u.organisation) for u in uses] == [
        (application()["title"], application()["organisation"])
    ]
