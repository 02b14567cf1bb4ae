"""The authorisation matrix: every kind of caller against own, foreign, masked, hidden and blocked
data, for reads, searches, counts, _include, chains, _has, history, $everything, $summary and
writes; and every HTTP endpoint against every kind of caller (a new endpoint without a guard fails
here). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.authn.routes import ROUTE_GUARDS, Guard
from carnet.caller import Kind, Principal, RequestContext
from carnet.policy.controls import ControlsService
from carnet.policy.enforce import note_care
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.shared_store import BOTH_BACKENDS, shared_services

# Both backends: a security suite: every decision over stored records.
pytestmark = pytest.mark.both_backends

FHIR = {"Content-Type": "application/fhir+json"}
LOINC = "http://loinc.org"
GP, NURSE, PHARMACIST, BLOCKED, STRANGER_MD = (
    "10000000001",
    "10000000002",
    "10000000003",
    "10000000004",
    "10000000005",
)


@dataclass
class World:
    services: Services
    client: TestClient
    a: str  # the patient, parent of c
    b: str  # another patient
    c: str  # a minor a represents
    obs: dict[str, str]  # name -> Observation id
    callers: dict[str, dict[str, str]]  # name -> headers

    def get(self, caller: str, path: str, **params: str) -> Any:
        return self.client.get(path, params=params, headers=self.callers[caller])


def _patient(services: Services, birth: str) -> str:
    body = {"resourceType": "Patient", "gender": "female", "birthDate": birth}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _obs(services: Services, patient: str, code: str) -> str:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2026-01-02",
    }
    return services.fhir.create("Observation", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _person(pid: str) -> Principal:
    return Principal(Kind.PERSON, f"acct-{pid[:8]}", patient_id=pid)


def _pro(rpps: str, profession: str) -> Principal:
    return Principal(Kind.PROFESSIONAL, f"pro-{rpps}", rpps=rpps, profession=profession)


@contextmanager
def built_world(s: Services) -> Iterator[World]:
    """Three patients, six Observations, masks, a block, a grant and a token per caller."""
    a, b, c = _patient(s, "1980-05-01"), _patient(s, "1975-03-03"), _patient(s, "2016-07-07")
    s.record.representatives.add(c, a, "parent", ctx=AS_LOCAL_OPERATOR)
    obs = {
        "a": _obs(s, a, "8302-2"),
        "a_masked": _obs(s, a, "99999-1"),  # the only Observation with this code
        "a_unannounced": _obs(s, a, "8867-4"),
        "b": _obs(s, b, "8302-2"),
        "c": _obs(s, c, "8302-2"),
        "c_private": _obs(s, c, "8310-5"),
    }
    with s.engine.begin() as conn:
        for rpps in (GP, NURSE, PHARMACIST, BLOCKED):
            note_care(conn, a, rpps, "declared")
    controls: ControlsService = s.controls
    as_a = RequestContext(actor="a", principal=_person(a))
    as_c = RequestContext(actor="c", principal=_person(c))
    controls.declare_care(as_a, None, GP, medecin_traitant=True)
    controls.set_block(as_a, None, BLOCKED, on=True)
    controls.set_mask(as_a, f"Observation/{obs['a_masked']}", "MASQUE_PS", on=True)
    controls.set_mask(
        as_c, f"Observation/{obs['c_private']}", "INVISIBLE_REPRESENTANTS_LEGAUX", on=True
    )
    gp_ctx = RequestContext(actor="gp", principal=_pro(GP, "physician"))
    controls.set_mask(gp_ctx, f"Observation/{obs['a_unannounced']}", "INVISIBLE_PATIENT", on=True)
    from carnet.authn.models import access_grant

    with s.engine.begin() as conn:
        conn.execute(
            access_grant.insert().values(
                patient_id=a,
                client_id="diabetes-app",
                scopes="patient/Observation.rs launch/patient",
                granted_at="2026-01-01T00:00:00.000000Z",
                revoked=False,
            )
        )
    principals = {
        "a": _person(a),
        "b": _person(b),
        "gp": _pro(GP, "physician"),
        "nurse": _pro(NURSE, "nurse"),
        "pharmacist": _pro(PHARMACIST, "pharmacist"),
        "blocked": _pro(BLOCKED, "physician"),
        "stranger_md": _pro(STRANGER_MD, "physician"),
        "app": Principal(
            Kind.APP,
            "diabetes-app",
            patient_id=a,
            client_id="diabetes-app",
            scopes=frozenset({"patient/Observation.rs", "launch/patient"}),
        ),
        "operator": TEST_OPERATOR,
    }
    callers = {name: bearer(s, p) for name, p in principals.items()}
    callers["anonymous"] = {}
    with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
        yield World(s, client, a, b, c, obs, callers)


# The world is built once per module and backend for the tests that only read it; the tests that
# write share a second one (they write new items nobody else reads, and each counts only its own
# change), and a test whose write changes what others would see (a care declaration, the guard
# matrix's calls to every endpoint) builds its own.
@pytest.fixture(scope="module", params=BOTH_BACKENDS)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with shared_services(request, request.param) as s, built_world(s) as built:
        yield built


@pytest.fixture(scope="module", params=BOTH_BACKENDS)
def write_world(request: pytest.FixtureRequest) -> Iterator[World]:
    with shared_services(request, request.param) as s, built_world(s) as built:
        yield built


@pytest.fixture
def own_world(services: Services) -> Iterator[World]:
    with built_world(services) as built:
        yield built


# -- reads of single resources ---------------------------------------------------------------------

R = 200
F = 403
N = 404  # hidden: exactly the answer for an item that does not exist
READS: dict[str, dict[str, int]] = {
    #              own  masked  unannounced  foreign  child  child-private
    "a":          {"a": R, "a_masked": R, "a_unannounced": N, "b": F, "c": R, "c_private": N},
    "b":          {"a": F, "a_masked": F, "a_unannounced": F, "b": R, "c": F, "c_private": F},
    "gp":         {"a": R, "a_masked": R, "a_unannounced": R, "b": F, "c": F, "c_private": F},
    "nurse":      {"a": R, "a_masked": N, "a_unannounced": R, "b": F, "c": F, "c_private": F},
    "pharmacist": {"a": F, "a_masked": F, "a_unannounced": F, "b": F, "c": F, "c_private": F},
    "blocked":    {"a": F, "a_masked": F, "a_unannounced": F, "b": F, "c": F, "c_private": F},
    "stranger_md": {"a": F, "a_masked": F, "a_unannounced": F, "b": F, "c": F, "c_private": F},
    "app":        {"a": R, "a_masked": R, "a_unannounced": N, "b": F, "c": F, "c_private": F},
    "operator":   {"a": R, "a_masked": R, "a_unannounced": R, "b": R, "c": R, "c_private": R},
    "anonymous":  {"a": 401, "a_masked": 401, "a_unannounced": 401, "b": 401, "c": 401, "c_private": 401},
}  # fmt: skip


@pytest.mark.parametrize("caller", sorted(READS))
def test_read_matrix(world: World, caller: str) -> None:
    for name, expected in READS[caller].items():
        r = world.get(caller, f"/fhir/Observation/{world.obs[name]}")
        assert r.status_code == expected, (caller, name, r.text)
        if expected == N:
            missing = world.get(caller, "/fhir/Observation/no-such-id").json()
            assert r.json()["issue"][0]["code"] == missing["issue"][0]["code"] == "not-found"
        if expected in (F, N):
            assert r.json()["resourceType"] == "OperationOutcome"


def _visible(world: World, caller: str) -> set[str]:
    return {name for name, status in READS[caller].items() if status == R}


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") != "include"
    }


def _names(world: World, ids: set[str]) -> set[str]:
    by_id = {v: k for k, v in world.obs.items()}
    return {by_id[i] for i in ids if i in by_id}


@pytest.mark.parametrize("caller", ["a", "b", "gp", "nurse", "app", "operator"])
def test_searches_and_counts_return_only_what_the_caller_may_read(
    world: World, caller: str
) -> None:
    expected = _visible(world, caller)
    r = world.get(caller, "/fhir/Observation", _count="100")
    assert r.status_code == 200, r.text
    assert _names(world, _ids(r.json())) == expected
    assert r.json()["total"] == len(expected)  # no count betrays a hidden item
    count = world.get(caller, "/fhir/Observation", _summary="count").json()
    assert count["total"] == len(expected)
    for patient in (world.a, world.b, world.c):
        found = _names(world, _ids(world.get(caller, "/fhir/Observation", patient=patient).json()))
        assert found <= expected
    # Reverse chaining through a hidden item finds nothing (the masked code is nowhere else).
    has = world.get(caller, "/fhir/Patient", **{"_has:Observation:subject:code": "99999-1"})
    if caller == "app":
        assert has.status_code == 403  # its scopes cover Observation only
    else:
        assert (world.a in _ids(has.json())) == ("a_masked" in expected)
    # A chain to the patient works only over what the caller sees.
    chained = world.get(caller, "/fhir/Observation", **{"subject:Patient._id": world.a})
    through_patient = set() if caller == "app" else {n for n in expected if n.startswith("a")}
    assert _names(world, _ids(chained.json())) == through_patient  # the app cannot see Patients


def test_a_count_is_in_the_history_of_the_records_it_counted(world: World) -> None:
    """A count (``_summary=count``, or a total beyond the page) tells what a record holds (has
    this patient a result with this code?), but its audit event named no record: the patient
    never saw it in their access history."""
    from tests.support.audit_log import logged_events

    services = world.services
    for params in (
        {"code": "99999-1", "_summary": "count"},
        {"code": "8302-2", "_total": "accurate", "_count": "0"},
    ):
        before = len(logged_events(services))
        counted = world.get("gp", "/fhir/Observation", patient=world.a, **params).json()
        assert counted["total"] == 1 and "entry" not in counted
        events = [e for e in logged_events(services)[before:] if e["actor"] == f"pro-{GP}"]
        assert [e["action"] for e in events] == ["search"]
        assert len(events[0]["subjects"]) == 1, params  # a's slice: in a's history
    history = world.get("a", "/fhir/AuditEvent", patient=world.a, _count="2").json()
    assert [e["resource"]["agent"][0]["who"]["identifier"]["value"] for e in history["entry"]] == [
        "acct-" + world.a[:8],  # this reading of the history, then the count
        f"pro-{GP}",
    ]


def test_an_empty_page_of_everything_is_in_the_records_history(world: World) -> None:
    """``$everything?_count=0`` answers how many items a record holds (of a ``_type``), but its
    event named no record: the read never showed in the patient's history."""
    from tests.support.audit_log import logged_events

    before = len(logged_events(world.services))
    url = f"/fhir/Patient/{world.a}/$everything"
    counted = world.get("gp", url, _count="0", _type="Observation").json()
    assert counted["total"] == 3 and "entry" not in counted
    events = [e for e in logged_events(world.services)[before:] if e["actor"] == f"pro-{GP}"]
    assert [(e["action"], len(e["subjects"])) for e in events] == [("everything", 1)]


def test_an_empty_page_of_an_items_history_is_in_its_records_history(world: World) -> None:
    """``Observation/<id>/_history?_count=0`` answers how many versions an item has, but its
    event named no record: the read never showed in the patient's history."""
    from tests.support.audit_log import logged_events

    before = len(logged_events(world.services))
    url = f"/fhir/Observation/{world.obs['a']}/_history"
    counted = world.get("gp", url, _count="0").json()
    assert counted["total"] == 1 and "entry" not in counted
    events = [e for e in logged_events(world.services)[before:] if e["actor"] == f"pro-{GP}"]
    assert [(e["action"], len(e["subjects"])) for e in events] == [("history", 1)]


def test_an_empty_page_of_a_types_history_is_in_the_histories_of_the_records_it_counted(
    world: World,
) -> None:
    """``Observation/_history?_count=0`` answers how many versions of Observations a restricted
    caller may see, across records, but its event named no record: the records it counted never
    saw it in their access history (a search's count and an item's history name them)."""
    from tests.support.audit_log import logged_events

    before = len(logged_events(world.services))
    counted = world.get("gp", "/fhir/Observation/_history", _count="0").json()
    assert counted["total"] >= 1 and "entry" not in counted
    events = [e for e in logged_events(world.services)[before:] if e["actor"] == f"pro-{GP}"]
    assert [(e["action"], len(e["subjects"])) for e in events] == [("history", 1)]
    history = world.get("a", "/fhir/AuditEvent", patient=world.a, _count="2").json()
    assert [e["resource"]["agent"][0]["who"]["identifier"]["value"] for e in history["entry"]] == [
        "acct-" + world.a[:8],  # this reading of the history, then the type's history
        f"pro-{GP}",
    ]


def test_pharmacist_finds_nothing_outside_the_matrix(world: World) -> None:
    # Break-glass could open Observations to a pharmacist, so the search is not refused, but it
    # finds nothing among the records the pharmacist cares for.
    r = world.get("pharmacist", "/fhir/Observation", patient=world.a)
    assert r.status_code == 200
    assert r.json()["total"] == 0
    assert world.get("pharmacist", "/fhir/MedicationRequest").status_code == 200


def test_include_and_revinclude_do_not_leak(world: World) -> None:
    r = world.get("nurse", "/fhir/Patient", _id=world.a, _revinclude="Observation:subject")
    included = {
        e["resource"]["id"]
        for e in r.json()["entry"]
        if e["resource"]["resourceType"] == "Observation"
    }
    assert _names(world, included) == {"a", "a_unannounced"}
    r = world.get("nurse", "/fhir/Observation", _id=world.obs["a"], _include="Observation:subject")
    assert {e["resource"]["id"] for e in r.json()["entry"]} == {world.obs["a"], world.a}


@pytest.mark.parametrize("caller", ["a", "gp", "nurse", "app"])
def test_history_everything_and_summary_hide_what_is_hidden(world: World, caller: str) -> None:
    expected = _visible(world, caller)
    history = world.get(caller, "/fhir/Observation/_history", _count="100").json()
    assert _names(world, {e["resource"]["id"] for e in history.get("entry", [])}) == expected
    assert history["total"] == len(expected)
    if caller == "app":
        return  # the app's scopes do not cover Patient: $everything is refused below
    everything = world.get(caller, f"/fhir/Patient/{world.a}/$everything").json()
    found = {e["resource"]["id"] for e in everything["entry"]}
    assert _names(world, found) == {n for n in expected if n.startswith("a")}


def test_everything_of_a_foreign_patient_is_refused(world: World) -> None:
    for caller in ("b", "stranger_md", "blocked"):
        r = world.get(caller, f"/fhir/Patient/{world.a}/$everything")
        assert r.status_code == 403, caller
        r = world.get(caller, f"/fhir/Patient/{world.a}/$summary")
        assert r.status_code == 403, caller
    assert world.get("app", f"/fhir/Patient/{world.a}/$everything").status_code == 403


def test_everything_and_summary_decide_the_caller_before_saying_a_record_was_deleted(
    write_world: World,
) -> None:
    """$everything and $summary answered 410 "was deleted" about a deleted Patient to anyone,
    before deciding whether they may read it (a plain read answers them 403): a stranger learnt
    that the record existed and was deleted."""
    s = write_world.services
    deleted, live = _patient(s, "1961-02-03"), _patient(s, "1962-03-04")
    s.fhir.delete("Patient", deleted, ctx=AS_LOCAL_OPERATOR)
    for caller in ("b", "stranger_md", "nurse"):
        for op in ("$everything", "$summary"):
            of_deleted = write_world.get(caller, f"/fhir/Patient/{deleted}/{op}")
            of_live = write_world.get(caller, f"/fhir/Patient/{live}/{op}")
            assert of_deleted.status_code == of_live.status_code == 403, (caller, op)
            assert of_deleted.text == of_live.text
    assert write_world.get("operator", f"/fhir/Patient/{deleted}/$everything").status_code == 410


def test_instance_history_of_a_masked_item_is_absent(world: World) -> None:
    r = world.get("nurse", f"/fhir/Observation/{world.obs['a_masked']}/_history")
    assert r.status_code == 404


# -- writes ---------------------------------------------------------------------------------------


def _new_obs(patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8302-2"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


WRITES = [
    ("a", "a", 201),  # a person completes their own profile
    ("a", "c", 201),  # and their child's
    ("a", "b", 403),
    ("nurse", "a", 201),
    ("nurse", "b", 201),  # a deposit: gives the nurse that item, not a care relationship
    ("pharmacist", "a", 403),  # Observation is outside the pharmacist's write types
    ("blocked", "a", 403),
    ("app", "a", 403),  # scopes: read and search only
    ("b", "a", 403),
    ("anonymous", "a", 401),
]


@pytest.mark.parametrize(("caller", "target", "expected"), WRITES)
def test_write_matrix(write_world: World, caller: str, target: str, expected: int) -> None:
    patient = getattr(write_world, target)
    before = write_world.get("operator", "/fhir/Observation", _summary="count").json()["total"]
    r = write_world.client.post(
        "/fhir/Observation", json=_new_obs(patient), headers={**FHIR, **write_world.callers[caller]}
    )
    assert r.status_code == expected, r.text
    after = write_world.get("operator", "/fhir/Observation", _summary="count").json()["total"]
    assert after == before + (1 if expected == 201 else 0)  # a refusal writes nothing


def test_care_comes_from_the_patients_declaration_not_a_deposit(own_world: World) -> None:
    assert own_world.get("nurse", f"/fhir/Observation/{own_world.obs['b']}").status_code == 403
    r = own_world.client.post(
        "/fhir/Observation",
        json=_new_obs(own_world.b),
        headers={**FHIR, **own_world.callers["nurse"]},
    )
    assert r.status_code == 201
    assert own_world.get("nurse", f"/fhir/Observation/{r.json()['id']}").status_code == 200
    assert own_world.get("nurse", f"/fhir/Observation/{own_world.obs['b']}").status_code == 403
    declared = own_world.client.post(
        "/access/care", json={"rpps": NURSE}, headers=own_world.callers["b"]
    )
    assert declared.status_code == 200
    assert own_world.get("nurse", f"/fhir/Observation/{own_world.obs['b']}").status_code == 200


def test_updates_and_deletes_of_hidden_or_foreign_items_are_refused(write_world: World) -> None:
    masked = write_world.obs["a_masked"]
    body = write_world.get("operator", f"/fhir/Observation/{masked}").json()
    body["status"] = "amended"
    r = write_world.client.put(
        f"/fhir/Observation/{masked}", json=body, headers={**FHIR, **write_world.callers["nurse"]}
    )
    assert r.status_code == 405  # as a PUT to a free id: only system callers choose ids
    r = write_world.client.delete(
        f"/fhir/Observation/{write_world.obs['b']}", headers=write_world.callers["nurse"]
    )
    assert r.status_code == 403
    assert (
        write_world.get("operator", f"/fhir/Observation/{write_world.obs['b']}").status_code == 200
    )
    # Moving one's own item into another patient's record is refused too.
    mine = write_world.get("a", f"/fhir/Observation/{write_world.obs['a']}").json()
    mine["subject"] = {"reference": f"Patient/{write_world.b}"}
    r = write_world.client.put(
        f"/fhir/Observation/{write_world.obs['a']}",
        json=mine,
        headers={**FHIR, **write_world.callers["a"]},
    )
    assert r.status_code == 403


def test_transactions_are_checked_entry_by_entry_and_fail_whole(write_world: World) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _new_obs(write_world.a),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": _new_obs(write_world.b),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    before = write_world.get("operator", "/fhir/Observation", _summary="count").json()["total"]
    r = write_world.client.post("/fhir", json=bundle, headers={**FHIR, **write_world.callers["a"]})
    assert r.status_code == 403
    assert (
        write_world.get("operator", "/fhir/Observation", _summary="count").json()["total"] == before
    )


def test_bulk_export_and_system_history_are_for_system_callers(write_world: World) -> None:
    for caller in ("a", "gp", "app"):
        r = write_world.client.get(
            "/fhir/$export", headers={**write_world.callers[caller], "Prefer": "respond-async"}
        )
        assert r.status_code == 403, caller
    r = write_world.client.get(
        "/fhir/$export", headers={**write_world.callers["operator"], "Prefer": "respond-async"}
    )
    assert r.status_code == 202


# -- every endpoint x every kind of caller ----------------------------------------------------------

KIND_OF = {
    "a": Kind.PERSON,
    "gp": Kind.PROFESSIONAL,
    "app": Kind.APP,
    "operator": Kind.OPERATOR,
}
GUARD_REFUSAL = "this endpoint is not for this kind of caller"


def _endpoints(app: Any) -> list[tuple[str, str]]:
    paths = app.openapi()["paths"]
    return sorted((path, method.upper()) for path, ops in paths.items() for method in ops)


def test_every_endpoint_has_a_guard(world: World) -> None:
    app = world.client.app
    missing = sorted({path for path, _ in _endpoints(app)} - set(ROUTE_GUARDS))
    assert not missing, f"endpoints without an access rule in carnet/authn/routes.py: {missing}"


def _fill(path: str, world: World) -> str:
    values = {
        "res_type": "Observation",
        "res_id": world.obs["a"],
        "patient_id": world.a,
        "version": "1",
        "rpps": GP,
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def test_endpoint_guard_matrix(own_world: World) -> None:
    """Each endpoint answers each kind of caller as its guard says: anonymous 401, the wrong kind
    403, the right kind past the guard (whatever the handler then says)."""
    allowed = {
        Guard.SIGNED_IN: set(KIND_OF.values()),
        Guard.PERSON: {Kind.PERSON},
        Guard.PROFESSIONAL: {Kind.PROFESSIONAL},
        Guard.OPERATOR: {Kind.OPERATOR},
    }
    checked = 0
    for path, method in _endpoints(own_world.client.app):
        guard = ROUTE_GUARDS[path]
        if guard is Guard.PUBLIC:
            continue
        url = _fill(path, own_world)
        r = own_world.client.request(method, url, json={})
        assert r.status_code == 401, (method, path)
        for caller, kind in KIND_OF.items():
            r = own_world.client.request(method, url, json={}, headers=own_world.callers[caller])
            refused = r.status_code == 403 and GUARD_REFUSAL in r.text
            assert refused == (kind not in allowed[guard]), (method, path, caller, r.status_code)
            assert r.status_code < 500, (method, path, caller, r.text)
            checked += 1
    assert checked > 100


def test_items_outside_any_record_are_for_system_callers(write_world: World) -> None:
    """An Observation about no patient is not directory data: system callers only."""
    orphan = _new_obs(write_world.a)
    orphan["subject"] = {"display": "unknown"}
    made = write_world.client.post(
        "/fhir/Observation", json=orphan, headers={**FHIR, **write_world.callers["operator"]}
    )
    assert made.status_code == 201
    orphan_id = made.json()["id"]
    assert write_world.get("operator", f"/fhir/Observation/{orphan_id}").status_code == 200
    assert orphan_id in _ids(write_world.get("operator", "/fhir/Observation", _count="100").json())
    for caller in ("a", "gp", "nurse", "app"):
        assert write_world.get(caller, f"/fhir/Observation/{orphan_id}").status_code == 403, caller
        assert orphan_id not in _ids(
            write_world.get(caller, "/fhir/Observation", _count="100").json()
        )
