"""The permit clocks: three months to decide from submission (EHDS art. 68), an expiry that closes
the permit, and the reminder to publish results 18 months after processing ends (art. 61)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carnet.app import Services
from carnet.caller import RequestContext
from carnet.hub.application import Application
from carnet.hub.dates import add_months
from carnet.hub.permits import PermitService
from carnet.hub.register import register_entry
from tests.support.authn import Clock
from tests.support.hub import RESEARCHER_A, REVIEWER_1, application, grant_roles


def _ctx(who) -> RequestContext:  # type: ignore[no-untyped-def]
    return RequestContext(who, who.subject, purpose="research")


def test_add_months_clamps_to_the_end_of_the_month() -> None:
    assert add_months(datetime(2026, 11, 30, tzinfo=UTC), 3) == datetime(2027, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)


def test_the_three_month_clock_runs_from_submission_and_shows_overdue(services: Services) -> None:
    grant_roles(services)
    clock = Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert services.hub is not None
    permits = PermitService(services.engine, services.audit, services.hub.roles, now=clock)
    permit = permits.apply(_ctx(RESEARCHER_A), Application.from_json(application()))
    assert permit.decision_due is None
    permits.step(_ctx(RESEARCHER_A), permit.permit_id, "submit")
    clock.advance(days=30)
    shown = permits.get(permit.permit_id).clock(clock())
    assert shown["decisionDue"] == "2026-06-02"
    assert shown["decisionDaysLeft"] == 62
    assert not shown["decisionOverdue"]
    clock.advance(days=63)
    assert permits.get(permit.permit_id).clock(clock())["decisionOverdue"]
    permits.step(_ctx(REVIEWER_1), permit.permit_id, "review")
    permits.step(_ctx(REVIEWER_1), permit.permit_id, "approve", valid_months=12)
    decided = permits.get(permit.permit_id).clock(clock())
    assert decided["decisionDaysLeft"] is None
    assert not decided["decisionOverdue"]


def test_an_active_permit_expires_and_results_are_due_18_months_later(services: Services) -> None:
    grant_roles(services)
    clock = Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert services.hub is not None
    permits = PermitService(services.engine, services.audit, services.hub.roles, now=clock)
    permit_id = permits.apply(_ctx(RESEARCHER_A), Application.from_json(application())).permit_id
    permits.step(_ctx(RESEARCHER_A), permit_id, "submit")
    permits.step(_ctx(REVIEWER_1), permit_id, "review")
    permits.step(_ctx(REVIEWER_1), permit_id, "approve", valid_months=6)
    permits.step(_ctx(RESEARCHER_A), permit_id, "activate")
    clock.advance(days=190)
    permit = permits.get(permit_id)
    assert permit.state == "expired"
    entry = register_entry(permit, clock())
    assert entry["resultsDue"] == "2028-03-02"
    assert not entry["resultsReminder"]
    clock.moment = datetime(2028, 3, 3, tzinfo=UTC)
    assert register_entry(permits.get(permit_id), clock())["resultsReminder"]
    permits.publish_results(_ctx(RESEARCHER_A), permit_id, "https://hal.science/hal-1")
    assert not register_entry(permits.get(permit_id), clock() + timedelta(days=1))[
        "resultsReminder"
    ]


def test_reading_a_permit_never_waits_for_a_writer_when_nothing_expires(
    services: Services,
) -> None:
    from carnet.db.engine import writing

    grant_roles(services)
    assert services.hub is not None
    permits = services.hub.permits
    permit_id = permits.apply(_ctx(RESEARCHER_A), Application.from_json(application())).permit_id
    started = datetime.now(UTC)
    with writing(services.engine):  # another writer holds SQLite's write lock
        assert permits.get(permit_id).state == "draft"
        assert len(permits.all_permits()) == 0
    assert (datetime.now(UTC) - started).total_seconds() < 3
