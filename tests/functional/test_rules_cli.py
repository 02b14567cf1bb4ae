"""`carnet rules`: the rule table is configurable, and an edit changes decisions."""

from __future__ import annotations

from pathlib import Path

from carnet.app import build_services
from carnet.caller import Kind, Principal
from carnet.policy.enforce import note_care
from carnet.settings import Settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.cli import invoke

NURSE = Principal(Kind.PROFESSIONAL, "pro-nurse", rpps="10000000029", profession="nurse")


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {"CARNET_DATA_DIR": str(data_dir), "CARNET_DATABASE_URL": "", "COLUMNS": "200"}
    result = invoke(args, env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_rules_list_and_set_change_the_decision(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out = _run(data, "rules", "list")
    assert code == 0
    assert any(line.startswith("nurse-read") and " allow " in line for line in out.splitlines())
    services = build_services(Settings.from_env({}, data_dir=str(data)))
    pid = services.fhir.create(
        "Patient", {"resourceType": "Patient"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    with services.engine.begin() as conn:
        note_care(conn, pid, NURSE.rpps or "", "declared")
        assert services.pdp.decide(conn, NURSE, "read", "Patient", pid).allowed
    code, out = _run(data, "rules", "set", "nurse-read", "--effect", "deny")
    assert code == 0, out
    services.pdp.reload()
    with services.engine.connect() as conn:
        decision = services.pdp.decide(conn, NURSE, "read", "Patient", pid)
    assert not decision.allowed and decision.rule == "nurse-read"
    services.close()


def test_rules_set_refuses_bad_edits_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args in (
        ("rules", "set", "no-such-rule", "--effect", "deny"),
        ("rules", "set", "nurse-read", "--effect", "maybe"),
        ("rules", "set", "nurse-read", "--types", "Obs ervation"),
        ("rules", "set", "nurse-read"),
    ):
        code, out = _run(data, *args)
        assert code != 0, args
        assert len(out.strip().splitlines()) == 1, out


def test_an_edited_deny_rule_also_filters_searches(tmp_path: Path) -> None:
    from carnet.caller import RequestContext
    from carnet.policy.rules import edit_rule

    services = build_services(Settings.from_env({}, data_dir=str(tmp_path / "data")))
    pid = services.fhir.create(
        "Patient", {"resourceType": "Patient"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": f"Patient/{pid}"},
    }
    services.fhir.create("Observation", obs, ctx=AS_LOCAL_OPERATOR)
    with services.engine.begin() as conn:
        note_care(conn, pid, NURSE.rpps or "", "declared")
    ctx = RequestContext(actor="n", principal=NURSE)
    assert services.fhir.search("", "Observation", [], ctx=ctx)["total"] == 1
    with services.engine.begin() as conn:  # a deny rule on top of the allowing one
        edit_rule(conn, "pro-blocked", res_types="*")
        from carnet.policy.models import access_rule

        conn.execute(
            access_rule.insert().values(
                rule_id="nurse-no-observation",
                actor="professional",
                profession="nurse",
                res_type="Observation",
                action="read",
                relationship="care",
                effect="deny",
                description="test",
            )
        )
    services.pdp.reload()
    assert services.fhir.search("", "Observation", [], ctx=ctx)["total"] == 0
    assert services.fhir.search("", "Patient", [], ctx=ctx)["total"] == 1
    services.close()
