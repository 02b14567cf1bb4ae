"""`carnet hub`: roles, permits, the workspace query for a team member, expiry and the catalogue;
each refusal is one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

from carnet.app import Services
from carnet.caller import RequestContext
from carnet.hub.application import Application
from tests.support.cli import invoke
from tests.support.hub import (
    RESEARCHER_A,
    REVIEWER_1,
    application,
    fake_extractor,
    grant_roles,
    operator_ctx,
    write_extract,
)


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "200"}
    result = invoke(args, env=env, catch_exceptions=False)
    return result.exit_code, result.output


def _ctx(who) -> RequestContext:  # type: ignore[no-untyped-def]
    return RequestContext(who, who.subject, purpose="research")


def test_hub_commands(sqlite_services: Services, tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out = _run(data, "hub", "grant", "someone", "researcher")
    assert (code, out.strip()) == (0, "someone: researcher")
    code, out = _run(data, "hub", "grant", "someone", "emperor")
    assert code != 0 and len(out.strip().splitlines()) == 1

    hub = sqlite_services.hub
    assert hub is not None
    grant_roles(sqlite_services)
    permit = hub.permits.apply(_ctx(RESEARCHER_A), Application.from_json(application()))
    code, out = _run(data, "hub", "extract-permit", permit.permit_id)
    assert code != 0 and len(out.strip().splitlines()) == 1  # a draft is not extracted
    for who, step in (
        (RESEARCHER_A, "submit"),
        (REVIEWER_1, "review"),
        (REVIEWER_1, "approve"),
        (RESEARCHER_A, "activate"),
    ):
        hub.permits.step(_ctx(who), permit.permit_id, step)
    hub.extracts.extract(operator_ctx(), permit.permit_id, fake_extractor, hub.extracts_dir)

    code, out = _run(data, "hub", "permits")
    assert code == 0 and permit.permit_id in out and "active" in out
    sql = "SELECT count(*) AS n FROM person"
    code, out = _run(data, "hub", "query", permit.permit_id, sql, "--member", RESEARCHER_A.subject)
    assert code == 0, out
    assert out.split() == ["n", "50"]
    code, out = _run(data, "hub", "query", permit.permit_id, sql, "--member", "stranger")
    assert code != 0 and len(out.strip().splitlines()) == 1
    code, out = _run(data, "hub", "expire")
    assert (code, out.strip()) == (0, "0 permit(s) expired")

    omop = tmp_path / "omop.duckdb"
    write_extract(omop, {("F", 1950): 30, ("M", 1980): 30})
    code, out = _run(data, "hub", "catalogue", str(omop))
    assert code == 0, out
    assert out.strip() == "carnet-record: 60 record(s), 60 individual(s) (rounded)"
    code, out = _run(data, "hub", "catalogue")  # without a file: from the store itself
    assert code == 0, out
    assert out.startswith("carnet-record: ") and "(rounded)" in out
