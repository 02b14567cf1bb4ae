"""What writing an item gives, and to whom, on SQLite and PostgreSQL: a deposit gives its author
their own item and nothing more of the record; care comes from the patient's declaration or an
encounter recorded by the care organisation (in the patient's history, with an alert); persons
and their apps never change or hide what care wrote, and care never hides the patient's own
entries from them. The author is the authenticated caller, whatever the body says.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import carnet
from carnet.app import Services, build_services, create_app
from carnet.audit.models import audit_event_patient
from carnet.authn.models import access_grant
from carnet.caller import Kind, Principal, RequestContext
from carnet.identity.decisions import VigilanceError
from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits, apply_to_patient
from carnet.identity.models import identity, quarantine
from carnet.identity.nir import make_nir
from carnet.identity.register import InMemoryRegister
from carnet.policy.models import access_alert, access_author, access_care
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.world_store import WorldStore, world_store_fixture

# Both backends: a security suite: authorship decided from stored records.
pytestmark = pytest.mark.both_backends

FHIR = {"Content-Type": "application/fhir+json"}
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
GP, STRANGER, OTHER = "10000000101", "10000000102", "10000000103"
JEAN = Traits.create("Dupont", ["Jean", "Paul"], "1985-07-04", "M", "75056")
NIR = make_nir(1, 1985, 7, "75056", 12)


@dataclass
class World:
    services: Services
    client: TestClient
    a: str  # an adult with a qualified INS, parent of c
    c: str  # a minor a represents
    a_obs: str  # an item of a's record written by care (an import)
    c_obs: str  # an item of c's record written by care
    callers: dict[str, dict[str, str]]

    def get(self, caller: str, path: str, **params: str) -> Any:
        return self.client.get(path, params=params, headers=self.callers[caller])

    def post(self, caller: str, path: str, body: dict[str, Any]) -> Any:
        return self.client.post(path, json=body, headers={**FHIR, **self.callers[caller]})

    def put(self, caller: str, path: str, body: dict[str, Any]) -> Any:
        return self.client.put(path, json=body, headers={**FHIR, **self.callers[caller]})


def _obs(subject: dict[str, Any], code: str = "8302-2") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": subject,
        "valueQuantity": {"value": 250, "unit": "mg/dL"},
    }


def _ref(patient: str) -> dict[str, Any]:
    return {"reference": f"Patient/{patient}"}


def _by_ins() -> dict[str, Any]:
    return {"type": "Patient", "identifier": {"system": INS_NIR_OID, "value": NIR}}


def _pro(rpps: str) -> Principal:
    return Principal(Kind.PROFESSIONAL, f"pro-{rpps}", rpps=rpps, profession="physician")


@dataclass(frozen=True)
class WorldIds:
    a: str
    c: str
    a_obs: str
    c_obs: str


def _people(a: str) -> dict[str, Principal]:
    return {
        "a": Principal(Kind.PERSON, "acct-a", patient_id=a),
        "gp": _pro(GP),
        "stranger": _pro(STRANGER),
        "other": _pro(OTHER),
        "app": Principal(
            Kind.APP,
            "acct-a",
            patient_id=a,
            client_id="diary-app",
            scopes=frozenset({"patient/Observation.cruds"}),
        ),
        "operator": TEST_OPERATOR,
    }


def _with_register(s: Services) -> Services:
    """Jean's qualified INS in the reference register (held in memory, so set on each build)."""
    register = InMemoryRegister()
    register.add(Ins(INS_NIR_OID, NIR), JEAN)
    s.identity.register = register
    return s


def _write_world(s: Services) -> WorldIds:
    _with_register(s)
    patient = apply_to_patient(
        {"resourceType": "Patient"}, JEAN, InsStatus.QUAL, Ins(INS_NIR_OID, NIR), outgoing=False
    )
    a = s.fhir.create("Patient", patient, ctx=AS_LOCAL_OPERATOR).stored.res_id
    c = s.fhir.create(
        "Patient", {"resourceType": "Patient", "birthDate": "2016-07-07"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    s.record.representatives.add(c, a, "parent", ctx=AS_LOCAL_OPERATOR)
    a_obs = s.fhir.create("Observation", _obs(_ref(a)), ctx=AS_LOCAL_OPERATOR).stored.res_id
    c_obs = s.fhir.create("Observation", _obs(_ref(c)), ctx=AS_LOCAL_OPERATOR).stored.res_id
    with s.engine.begin() as conn:
        conn.execute(
            access_grant.insert().values(
                patient_id=a,
                client_id="diary-app",
                scopes="patient/Observation.cruds",
                granted_at="2026-01-01T00:00:00.000000Z",
                revoked=False,
            )
        )
    with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
        declared = client.post(
            "/access/care", json={"rpps": GP}, headers={**FHIR, **bearer(s, _people(a)["a"])}
        )
        assert declared.status_code == 200, declared.text
    return WorldIds(a, c, a_obs, c_obs)


world_store = world_store_fixture(_write_world)  # once per backend; a copy per test


@pytest.fixture
def world(world_store: WorldStore[WorldIds], tmp_path: Path) -> Iterator[World]:
    ids = world_store.ids
    copy = world_store.copy_into(tmp_path / "data")
    s = _with_register(build_services(copy, migrate=False))
    try:
        callers = {name: bearer(s, p) for name, p in _people(ids.a).items()}
        with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
            yield World(s, client, ids.a, ids.c, ids.a_obs, ids.c_obs, callers)
    finally:
        s.close()


def _care(world: World, patient: str) -> set[str]:
    with world.services.engine.connect() as conn:
        rows = conn.execute(select(access_care.c.rpps).where(access_care.c.patient_id == patient))
        return set(rows.scalars())


# -- a deposit gives its author their own item, and nothing more -----------------------------------


def test_deposit_grants_its_author_only_what_they_deposited(world: World) -> None:
    sent = world.post("stranger", "/fhir/Observation", _obs(_by_ins()))
    assert sent.status_code == 201, sent.text
    mine = sent.json()["id"]
    assert world.get("stranger", f"/fhir/Observation/{mine}").status_code == 200
    # nothing else of the record: not the Patient, not the other items, in no search or count
    assert world.get("stranger", f"/fhir/Patient/{world.a}").status_code == 403
    assert world.get("stranger", f"/fhir/Observation/{world.a_obs}").status_code == 403
    found = world.get("stranger", "/fhir/Observation", patient=world.a).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [mine]
    assert found["total"] == 1
    assert world.get("stranger", "/fhir/Patient", _summary="count").json()["total"] == 0
    everything = world.get("stranger", f"/fhir/Patient/{world.a}/$everything")
    assert everything.status_code == 403
    # a child's record the same way
    child = world.post("stranger", "/fhir/Observation", _obs(_ref(world.c)))
    assert child.status_code == 201, child.text
    assert world.get("stranger", f"/fhir/Observation/{world.c_obs}").status_code == 403
    assert world.get("stranger", f"/fhir/Patient/{world.c}").status_code == 403
    assert STRANGER not in _care(world, world.a) | _care(world, world.c)
    # the author corrects and withdraws their own item; not someone else's
    body = world.get("stranger", f"/fhir/Observation/{mine}").json()
    body["status"] = "amended"
    assert world.put("stranger", f"/fhir/Observation/{mine}", body).status_code == 200
    assert world.get("other", f"/fhir/Observation/{mine}").status_code == 403
    assert (
        world.client.delete(f"/fhir/Observation/{mine}", headers=world.callers["other"]).status_code
        == 403
    )
    assert (
        world.client.delete(
            f"/fhir/Observation/{mine}", headers=world.callers["stranger"]
        ).status_code
        == 204
    )


def test_ending_care_is_not_undone_by_a_deposit(world: World) -> None:
    assert world.get("gp", f"/fhir/Observation/{world.a_obs}").status_code == 200
    assert world.client.delete(f"/access/care/{GP}", headers=world.callers["a"]).status_code == 200
    assert world.post("gp", "/fhir/Observation", _obs(_ref(world.a))).status_code == 201
    assert world.get("gp", f"/fhir/Observation/{world.a_obs}").status_code == 403
    assert GP not in _care(world, world.a)


def test_author_of_an_item_is_the_caller_not_the_body(world: World) -> None:
    # The stranger names the other professional as performer and in the meta tags: the item
    # is still the stranger's, and the other professional gets nothing from it.
    body = _obs(_ref(world.a))
    body["performer"] = [{"identifier": {"system": RPPS_SYSTEM, "value": OTHER}}]
    body["meta"] = {"tag": [{"system": RPPS_SYSTEM, "code": OTHER}]}
    sent = world.post("stranger", "/fhir/Observation", body)
    assert sent.status_code == 201, sent.text
    assert world.get("other", f"/fhir/Observation/{sent.json()['id']}").status_code == 403
    assert world.get("stranger", f"/fhir/Observation/{sent.json()['id']}").status_code == 200


def _encounter(world: World, rpps: str) -> dict[str, Any]:
    practitioner = {
        "resourceType": "Practitioner",
        "identifier": [{"system": RPPS_SYSTEM, "value": rpps}],
    }
    pract = world.post("operator", "/fhir/Practitioner", practitioner).json()["id"]
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": _ref(world.a),
        "participant": [{"individual": {"reference": f"Practitioner/{pract}"}}],
    }


def test_encounter_written_by_a_professional_creates_no_care(world: World) -> None:
    sent = world.post("stranger", "/fhir/Encounter", _encounter(world, STRANGER))
    assert sent.status_code == 201, sent.text
    assert world.get("stranger", f"/fhir/Observation/{world.a_obs}").status_code == 403
    assert STRANGER not in _care(world, world.a)


def test_new_care_relationship_is_in_the_patients_history_and_alerted(world: World) -> None:
    sent = world.post("operator", "/fhir/Encounter", _encounter(world, OTHER))
    assert sent.status_code == 201, sent.text
    assert world.get("other", f"/fhir/Observation/{world.a_obs}").status_code == 200
    history = world.get("a", "/fhir/AuditEvent", patient=world.a, _count="500").json()
    begun = [
        e["resource"]
        for e in history.get("entry", [])
        if e["resource"]["subtype"][0]["code"] == "care-begin"
    ]
    assert len(begun) == 1
    with world.services.engine.connect() as conn:
        alerts = conn.execute(
            select(access_alert.c.kind, access_alert.c.subject).where(
                access_alert.c.patient_id == world.a
            )
        ).all()
    assert ("care-relationship", OTHER) in [tuple(r) for r in alerts]
    # the same encounter written again begins nothing new
    again = _encounter(world, OTHER)
    assert world.post("operator", "/fhir/Encounter", again).status_code == 201
    history = world.get("a", "/fhir/AuditEvent", patient=world.a, _count="500").json()
    codes = [e["resource"]["subtype"][0]["code"] for e in history.get("entry", [])]
    assert codes.count("care-begin") == 1


# -- what care wrote stays as care wrote it --------------------------------------------------------


@pytest.mark.parametrize("caller", ["a", "app"])
def test_patient_cannot_modify_professional_authored_item(world: World, caller: str) -> None:
    sent = world.post("gp", "/fhir/Observation", _obs(_ref(world.a)))
    assert sent.status_code == 201, sent.text
    items = {"deposit": sent.json()["id"], "import": world.a_obs}
    for item in items.values():
        path = f"/fhir/Observation/{item}"
        before = world.get("operator", path).json()
        edited = dict(before, valueQuantity={"value": 90, "unit": "mg/dL"})
        refused = world.put(caller, path, edited)
        assert refused.status_code == 403, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        gone = world.client.delete(path, headers=world.callers[caller])
        assert gone.status_code == 403, gone.text
        assert world.get("operator", path).json() == before  # nothing changed
        assert world.get(caller, path).status_code == 200  # still theirs to read
    history = world.get("a", "/fhir/AuditEvent", patient=world.a, _count="500").json()
    refusals = [
        e["resource"]
        for e in history.get("entry", [])
        if e["resource"]["outcomeDesc"] == "HTTP 403"
        and e["resource"]["subtype"][0]["code"] in ("update", "delete")
    ]
    assert len(refusals) == 4  # every refusal audited, in the patient's history


def test_representative_cannot_modify_professional_authored_item(world: World) -> None:
    path = f"/fhir/Observation/{world.c_obs}"
    before = world.get("operator", path).json()
    edited = dict(before, status="cancelled")
    assert world.put("a", path, edited).status_code == 403
    assert world.client.delete(path, headers=world.callers["a"]).status_code == 403
    assert world.get("operator", path).json() == before


def test_patient_still_edits_and_deletes_their_own_entries(world: World) -> None:
    sent = world.post("a", "/fhir/Observation", _obs(_ref(world.a)))
    assert sent.status_code == 201, sent.text
    path = f"/fhir/Observation/{sent.json()['id']}"
    edited = dict(sent.json(), valueQuantity={"value": 95, "unit": "mg/dL"})
    assert world.put("a", path, edited).status_code == 200
    by_app = world.post("app", "/fhir/Observation", _obs(_ref(world.a)))
    assert by_app.status_code == 201, by_app.text
    # the app acts for the person: what either wrote is the patient's side
    assert world.client.delete(path, headers=world.callers["app"]).status_code == 204
    app_path = f"/fhir/Observation/{by_app.json()['id']}"
    assert world.client.delete(app_path, headers=world.callers["a"]).status_code == 204


def _hide(world: World, caller: str, item: str) -> Any:
    return world.client.post(
        "/access/masks",
        json={"resource": f"Observation/{item}", "flag": "INVISIBLE_PATIENT"},
        headers=world.callers[caller],
    )


def test_patient_own_entries_cannot_be_hidden_from_them(world: World) -> None:
    own = world.post("a", "/fhir/Observation", _obs(_ref(world.a))).json()["id"]
    by_app = world.post("app", "/fhir/Observation", _obs(_ref(world.a))).json()["id"]
    for item in (own, by_app):
        refused = _hide(world, "gp", item)  # the GP has a care relationship
        assert refused.status_code == 403, refused.text
        assert world.get("a", f"/fhir/Observation/{item}").status_code == 200
    # what care wrote: its author may hide it, and so may a professional with care ...
    deposited = world.post("stranger", "/fhir/Observation", _obs(_ref(world.a))).json()["id"]
    assert _hide(world, "stranger", deposited).status_code == 200
    assert world.get("a", f"/fhir/Observation/{deposited}").status_code == 404
    assert _hide(world, "gp", world.a_obs).status_code == 200
    # ... but not another professional without care, who is told nothing of the item
    other = world.post("gp", "/fhir/Observation", _obs(_ref(world.a))).json()["id"]
    assert _hide(world, "other", other).status_code == 404
    assert world.get("a", f"/fhir/Observation/{other}").status_code == 200


def _migration_0013() -> Any:
    path = Path(carnet.__file__).parent / "db/migrations/versions/0013_access_author.py"
    spec = importlib.util.spec_from_file_location("migration_0013", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_patient_entries_written_before_authors_were_recorded_stay_theirs(world: World) -> None:
    """Entries a patient or their app wrote before migration 0013 had no author row, so counted
    as written by care: read-only to the patient, hideable by care. The upgrade's backfill from
    the audit log makes them the patient's again."""
    own = world.post("a", "/fhir/Observation", _obs(_ref(world.a))).json()
    by_app = world.post("app", "/fhir/Observation", _obs(_ref(world.a))).json()
    engine = world.services.engine
    a = access_author.c
    with engine.begin() as conn:  # as before the upgrade: no author recorded
        conn.execute(access_author.delete().where(a.res_id.in_([own["id"], by_app["id"]])))
        _migration_0013()._backfill_authors(conn)
    for item in (own, by_app):
        refused = _hide(world, "gp", item["id"])
        assert refused.status_code == 403, refused.text
        edited = world.put("a", f"/fhir/Observation/{item['id']}", dict(item, status="amended"))
        assert edited.status_code == 200, edited.text
    # what care wrote stays care's
    assert _hide(world, "gp", world.a_obs).status_code == 200


# -- refusals on someone's items are in their history ----------------------------------------------


def test_refused_read_of_someones_item_is_in_their_history(world: World) -> None:
    item = world.a_obs
    path = f"/fhir/Observation/{item}"
    body = world.get("operator", path).json()
    tries = [
        world.get("stranger", path),
        world.get("stranger", f"{path}/_history/1"),
        world.put("stranger", path, dict(body, status="cancelled")),
        world.client.delete(path, headers=world.callers["stranger"]),
    ]
    assert [t.status_code for t in tries] == [403, 403, 403, 403]
    history = world.get("a", "/fhir/AuditEvent", patient=world.a, _count="500").json()
    refused = [
        e["resource"]
        for e in history.get("entry", [])
        if e["resource"]["outcomeDesc"] == "HTTP 403"
        and any(x["what"]["reference"] == f"Observation/{item}" for x in e["resource"]["entity"])
    ]
    assert sorted(e["subtype"][0]["code"] for e in refused) == ["delete", "read", "update", "vread"]
    # and not in anyone else's
    other = world.get("operator", "/fhir/AuditEvent", patient=world.c, _count="500").json()
    assert item not in str(other)


def _slice_count(world: World, patient: str) -> int:
    with world.services.engine.connect() as conn:
        c = audit_event_patient.c
        return len(conn.execute(select(c.seq).where(c.patient_id == patient)).all())


def test_refused_entry_of_a_transaction_is_in_the_owners_history(world: World) -> None:
    """A transaction refused for one entry on someone's item names that item in its owner's slice,
    as the same refusal outside a transaction does."""
    path = f"Observation/{world.a_obs}"
    body = world.get("operator", f"/fhir/{path}").json()
    before = _slice_count(world, world.a)
    assert world.get("stranger", f"/fhir/{path}").status_code == 403
    assert _slice_count(world, world.a) == before + 1
    entries: list[dict[str, Any]] = [
        {"request": {"method": "GET", "url": path}},
        {"request": {"method": "PUT", "url": path}, "resource": dict(body, status="cancelled")},
    ]
    for entry in entries:
        before = _slice_count(world, world.a)
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        refused = world.post("stranger", "/fhir", bundle)
        assert refused.status_code == 403, refused.text
        assert _slice_count(world, world.a) == before + 1
    other = world.get("operator", "/fhir/AuditEvent", patient=world.c, _count="500").json()
    assert world.a_obs not in str(other)  # and in no one else's


def test_patient_cannot_modify_professional_authored_item_in_a_transaction(world: World) -> None:
    path = f"Observation/{world.a_obs}"
    before = world.get("operator", f"/fhir/{path}").json()
    own = world.post("a", "/fhir/Observation", _obs(_ref(world.a))).json()
    for method, resource in (("PUT", dict(before, status="cancelled")), ("DELETE", None)):
        entry: dict[str, Any] = {"request": {"method": method, "url": path}}
        if resource is not None:
            entry["resource"] = resource
        # with an allowed change of the patient's own entry: the whole transaction fails
        mine = {
            "request": {"method": "PUT", "url": f"Observation/{own['id']}"},
            "resource": dict(own, status="amended"),
        }
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [mine, entry]}
        r = world.post("a", "/fhir", bundle)
        assert r.status_code == 403, r.text
    assert world.get("operator", f"/fhir/{path}").json() == before
    assert world.get("a", f"/fhir/Observation/{own['id']}").json()["status"] == "final"


def test_deposit_in_a_transaction_grants_its_author_only_that_item(world: World) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Observation"}, "resource": _obs(_by_ins())},
            {"request": {"method": "GET", "url": f"Observation/{world.a_obs}"}},
        ],
    }
    r = world.post("stranger", "/fhir", bundle)
    assert r.status_code == 403, r.text  # the read of another item fails the transaction
    bundle["entry"] = bundle["entry"][:1]
    r = world.post("stranger", "/fhir", bundle)
    assert r.status_code == 200, r.text
    assert world.get("stranger", f"/fhir/Observation/{world.a_obs}").status_code == 403
    assert STRANGER not in _care(world, world.a)


def test_released_deposit_keeps_its_depositor_as_author(world: World) -> None:
    marie = Traits.create("Martin", ["Marie"], "1990-02-03", "F", "69123")
    nir = make_nir(2, 1990, 2, "69123", 45)
    by_ins = {"type": "Patient", "identifier": {"system": INS_NIR_OID, "value": nir}}
    held = world.post("stranger", "/fhir/Observation", _obs(by_ins))
    assert held.status_code == 202, held.text  # an unknown INS: held for vigilance
    patient = apply_to_patient({"resourceType": "Patient"}, marie, InsStatus.VALI, None)
    patient["identifier"] = [{"system": INS_NIR_OID, "value": nir}]
    written = world.post("other", "/fhir/Patient", patient)
    assert written.status_code == 201, written.text  # its Patient releases the held deposit
    found = world.get("operator", "/fhir/Observation", patient=written.json()["id"]).json()
    released = [e["resource"]["id"] for e in found.get("entry", [])]
    assert len(released) == 1
    # the depositor, not whoever released it, is its author: they read it back, the releaser not
    assert world.get("stranger", f"/fhir/Observation/{released[0]}").status_code == 200
    assert world.get("other", f"/fhir/Observation/{released[0]}").status_code == 403


def test_a_held_deposit_of_a_professional_the_patient_blocked_never_enters_their_record(
    world: World,
) -> None:
    assert world.post("a", "/access/blocks", {"rpps": STRANGER}).status_code == 200
    # Named by Jean's INS, the blocked professional's deposit is refused...
    assert world.post("stranger", "/fhir/Observation", _obs(_by_ins())).status_code == 403
    # ...and named by an INS nobody knows yet, it is held for identity vigilance.
    other_nir = make_nir(1, 1985, 7, "75056", 99)
    by_other = {"type": "Patient", "identifier": {"system": INS_NIR_OID, "value": other_nir}}
    held = world.post("stranger", "/fhir/Observation", _obs(by_other))
    assert held.status_code == 202, held.text
    before = world.get("operator", "/fhir/Observation", patient=world.a).json()["total"]
    # The officer finds that INS is Jean's: the merge must not carry the professional's
    # document past the block Jean set.
    with world.services.engine.connect() as conn:
        target = conn.execute(
            select(identity.c.id).where(identity.c.patient_id == world.a)
        ).scalar_one()
    (item,) = world.get("operator", "/identity/queue", state="open").json()["items"]
    merged = world.services.identity.vigilance.merge(
        item["identity"], target, actor="officer", ctx=AS_LOCAL_OPERATOR
    )
    assert merged["released"] == 0
    after = world.get("operator", "/fhir/Observation", patient=world.a).json()["total"]
    assert after == before


def _held_for_a_blocked_professional(world: World) -> tuple[dict[str, Any], str]:
    """Jean blocks the stranger, whose deposit under an INS nobody knows is held; the open
    item and Jean's identity."""
    assert world.post("a", "/access/blocks", {"rpps": STRANGER}).status_code == 200
    other_nir = make_nir(1, 1985, 7, "75056", 99)
    by_other = {"type": "Patient", "identifier": {"system": INS_NIR_OID, "value": other_nir}}
    assert world.post("stranger", "/fhir/Observation", _obs(by_other)).status_code == 202
    with world.services.engine.connect() as conn:
        jean = conn.execute(
            select(identity.c.id).where(identity.c.patient_id == world.a)
        ).scalar_one()
    (item,) = world.get("operator", "/identity/queue", state="open").json()["items"]
    return item, jean


def _held_in_open_items(world: World) -> int:
    items = world.get("operator", "/identity/queue", state="open").json()["items"]
    return sum(len(i["quarantined"]) for i in items)


def test_a_held_document_always_stays_in_the_officers_queue(world: World) -> None:
    # The officer merges the held document's INS into Jean: the block keeps it out of his
    # record, but the merge closed the only item that showed it, under an identity now merged:
    # held, and seen by no one ever again.
    item, jean = _held_for_a_blocked_professional(world)
    vigilance = world.services.identity.vigilance
    merged = vigilance.merge(
        item["identity"], jean, actor="officer", item_id=item["id"], ctx=AS_LOCAL_OPERATOR
    )
    assert merged["released"] == 0
    assert _held_in_open_items(world) == 1
    # Dismissed (not to be released), it is still held, so still in an open item.
    (again,) = world.get("operator", "/identity/queue", state="open").json()["items"]
    vigilance.dismiss(again["id"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    assert _held_in_open_items(world) == 1
    # The merge undone, the document is the source identity's again, still in sight.
    vigilance.unmerge(merged["merge"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    items = world.get("operator", "/identity/queue", state="open").json()["items"]
    assert [len(i["quarantined"]) for i in items if i["identity"] == item["identity"]] == [1]


def test_a_dismissal_never_releases_a_held_document_into_a_deleted_patients_record(
    world: World,
) -> None:
    # Held in Jean's sight after the merge, the document waits on his block; he lifts it, and his
    # Patient is then deleted: the officer's dismissal would file it under a record that no
    # longer exists (as 531617e refused for a merge), so it stays held and the item open.
    item, jean = _held_for_a_blocked_professional(world)
    vigilance = world.services.identity.vigilance
    vigilance.merge(
        item["identity"], jean, actor="officer", item_id=item["id"], ctx=AS_LOCAL_OPERATOR
    )
    # Lifted past the page's step-up: the rule under test is the dismissal's, not the block's.
    as_jean = RequestContext(actor="acct-a", principal=_people(world.a)["a"])
    world.services.controls.set_block(as_jean, None, STRANGER, on=False)
    operator = world.callers["operator"]
    assert world.client.delete(f"/fhir/Patient/{world.a}", headers=operator).status_code == 204
    (held,) = world.get("operator", "/identity/queue", state="open").json()["items"]
    with pytest.raises(VigilanceError, match="deleted"):
        vigilance.dismiss(held["id"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    with world.services.engine.connect() as conn:
        released = select(quarantine.c.released_at).where(quarantine.c.id.in_(held["quarantined"]))
        assert conn.execute(released).scalar_one() is None
    assert [
        i["id"] for i in world.get("operator", "/identity/queue", state="open").json()["items"]
    ] == [held["id"]]
