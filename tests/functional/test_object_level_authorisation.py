"""Object-level authorisation (OWASP API1): every object a caller reaches, by id, in a batch or
transaction entry, through a bulk job, an older version or an identity deposit, is decided for
that caller, and a masked item looks exactly like a missing one. Each bypass a review found is
pinned here so it stays closed. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.caller import Kind, Principal, RequestContext
from carnet.policy.enforce import note_care
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.shared_store import BOTH_BACKENDS, shared_services

# Both backends: a security suite: access review reads the audit store.
pytestmark = pytest.mark.both_backends

FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {"Prefer": "respond-async", "Content-Type": "application/fhir+json"}
GP = "10000000001"
MISSING = "00000000-0000-4000-8000-000000000000"


@dataclass
class World:
    services: Services
    client: TestClient
    a: str
    b: str
    obs: str  # a's Observation
    masked: str  # a's Observation masked from professionals (MASQUE_PS)
    callers: dict[str, dict[str, str]]


def _obs(services: Services, patient: str) -> str:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    return services.fhir.create("Observation", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


@contextmanager
def built_world(s: Services) -> Iterator[World]:
    """Two patients, a's Observation and a masked one, a care relationship, a token per caller."""
    a, b = (
        s.fhir.create(
            "Patient", {"resourceType": "Patient", "birthDate": d}, ctx=AS_LOCAL_OPERATOR
        ).stored.res_id
        for d in ("1980-05-01", "1975-03-03")
    )
    obs, masked = _obs(s, a), _obs(s, a)
    with s.engine.begin() as conn:
        note_care(conn, a, GP, "declared")
    as_a = RequestContext(actor="a", principal=Principal(Kind.PERSON, "acct-a", patient_id=a))
    s.controls.set_mask(as_a, f"Observation/{masked}", "MASQUE_PS", on=True)
    principals = {
        "a": Principal(Kind.PERSON, "acct-a", patient_id=a),
        "b": Principal(Kind.PERSON, "acct-b", patient_id=b),
        "gp": Principal(Kind.PROFESSIONAL, "pro-gp", rpps=GP, profession="physician"),
        "operator": TEST_OPERATOR,
        "other_operator": Principal(
            Kind.OPERATOR, "operator:other", scopes=frozenset({"system/*.*"})
        ),
        "reader_operator": Principal(
            Kind.OPERATOR, "operator:reader", scopes=frozenset({"system/*.rs"})
        ),
    }
    callers = {name: bearer(s, p) for name, p in principals.items()}
    with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
        yield World(s, client, a, b, obs, masked, callers)


# Built once per module and backend for the tests that read it, are refused, or write only new
# ids and audit events they count as a difference; a test whose write could show elsewhere (an
# import, a Patient for identity matching) builds its own.
@pytest.fixture(scope="module", params=BOTH_BACKENDS)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with shared_services(request, request.param) as s, built_world(s) as built:
        yield built


@pytest.fixture
def own_world(services: Services) -> Iterator[World]:
    with built_world(services) as built:
        yield built


def _bundle(kind: str, *urls: str) -> bytes:
    entries = [{"request": {"method": "GET", "url": url}} for url in urls]
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": entries})


# -- batch and transaction GET entries ---------------------------------------------------------


def test_batch_get_by_id_is_decided_per_resource(world: World) -> None:
    """A GET entry of a batch read any resource by id: only the type was checked."""
    c = world.client
    body = _bundle("batch", f"Observation/{world.obs}", f"Observation/{world.masked}")
    stranger = c.post("/fhir", content=body, headers={**FHIR, **world.callers["b"]})
    assert stranger.status_code == 200
    for entry in stranger.json()["entry"]:
        assert "resource" not in entry
        assert entry["response"]["status"] == "403"
    gp = c.post("/fhir", content=body, headers={**FHIR, **world.callers["gp"]}).json()
    assert gp["entry"][0]["response"]["status"] == "200 OK"
    assert gp["entry"][0]["resource"]["id"] == world.obs
    assert "resource" not in gp["entry"][1]
    assert gp["entry"][1]["response"]["status"] == "404"  # as for a missing one
    missing = _bundle("batch", f"Observation/{MISSING}")
    gone = c.post("/fhir", content=missing, headers={**FHIR, **world.callers["gp"]}).json()
    hidden_outcome = gp["entry"][1]["response"]["outcome"]
    missing_outcome = gone["entry"][0]["response"]["outcome"]
    assert orjson.dumps(hidden_outcome).replace(world.masked.encode(), MISSING.encode()) == (
        orjson.dumps(missing_outcome)
    )


def test_transaction_get_by_id_is_decided_per_resource(world: World) -> None:
    c = world.client
    body = _bundle("transaction", f"Observation/{world.obs}")
    stranger = c.post("/fhir", content=body, headers={**FHIR, **world.callers["b"]})
    assert stranger.status_code == 403
    assert "8302-2" not in stranger.text
    masked = _bundle("transaction", f"Observation/{world.masked}")
    gp = c.post("/fhir", content=masked, headers={**FHIR, **world.callers["gp"]})
    assert gp.status_code == 404
    own = c.post("/fhir", content=body, headers={**FHIR, **world.callers["a"]})
    assert own.status_code == 200
    assert own.json()["entry"][0]["resource"]["id"] == world.obs


# -- bulk jobs belong to whoever started them ----------------------------------------------------


def _wait(client: TestClient, url: str, headers: dict[str, str]) -> Any:
    for _ in range(400):
        response = client.get(url, headers=headers)
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(0.025)
    raise AssertionError("job did not finish")


def test_export_status_and_files_are_the_callers_own(world: World) -> None:
    c = world.client
    kicked = c.get("/fhir/$export", headers={**ASYNC, **world.callers["operator"]})
    assert kicked.status_code == 202
    status = kicked.headers["Content-Location"].replace("http://127.0.0.1", "")
    manifest = _wait(c, status, world.callers["operator"])
    assert manifest["output"]
    file_url = manifest["output"][0]["url"].replace("http://127.0.0.1", "")
    job = status.rsplit("/", 1)[1]
    missing_status = status.replace(job, MISSING)
    for other in ("a", "gp", "other_operator"):
        for method in ("GET", "DELETE"):
            seen = c.request(method, status, headers=world.callers[other])
            unknown = c.request(method, missing_status, headers=world.callers[other])
            assert seen.status_code == unknown.status_code == 404, (other, method)
            assert seen.text.replace(job, MISSING) == unknown.text
    assert c.get(file_url, headers=world.callers["other_operator"]).status_code == 404
    # the job is untouched and still its owner's
    assert c.get(status, headers=world.callers["operator"]).status_code == 200
    assert c.get(file_url, headers=world.callers["operator"]).status_code == 200


def test_a_group_export_needs_the_right_to_read_the_group(world: World) -> None:
    """A Group's members are its content: a backend whose scopes grant Observations only could
    export the Observations of a Group's members, learning who is in it (and, by 404 or 202,
    which Groups exist) without any right to read the Group."""
    s, c = world.services, world.client
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{world.a}"}}],
    }
    gid = s.fhir.create("Group", group, ctx=AS_LOCAL_OPERATOR).stored.res_id
    lab = Principal(
        Kind.BACKEND, "lab-obs", client_id="lab-obs", scopes=frozenset({"system/Observation.rs"})
    )
    for target in (gid, MISSING):
        kicked = c.get(f"/fhir/Group/{target}/$export", headers={**ASYNC, **bearer(s, lab)})
        assert kicked.status_code == 403, (target, kicked.text)
    reader = c.get(f"/fhir/Group/{gid}/$export", headers={**ASYNC, **world.callers["operator"]})
    assert reader.status_code == 202, reader.text


def test_import_status_is_the_callers_own(own_world: World) -> None:
    c = own_world.client
    folder = own_world.services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.ndjson").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "rv1"}))
    body = {"input": [{"type": "Patient", "url": "file:p.ndjson"}]}
    kicked = c.post("/fhir/$import", json=body, headers={**ASYNC, **own_world.callers["operator"]})
    assert kicked.status_code == 202, kicked.text
    status = kicked.headers["Content-Location"].replace("http://127.0.0.1", "")
    _wait(c, status, own_world.callers["operator"])
    for other in ("a", "other_operator"):
        for method in ("GET", "DELETE"):
            seen = c.request(method, status, headers=own_world.callers[other])
            assert seen.status_code == 404, (other, method)
    assert c.get(status, headers=own_world.callers["operator"]).status_code == 200


def test_import_needs_write_scopes(world: World) -> None:
    """$import writes: a read-only system token (``system/*.rs``, the CLI's default) may not."""
    c = world.client
    folder = world.services.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.ndjson").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "rv2"}))
    body = {"input": [{"type": "Patient", "url": "file:p.ndjson"}]}
    refused = c.post(
        "/fhir/$import", json=body, headers={**ASYNC, **world.callers["reader_operator"]}
    )
    assert refused.status_code == 403, refused.text
    assert c.get("/fhir/Patient/rv2", headers=world.callers["operator"]).status_code == 404


# -- a masked item looks exactly like a missing one ------------------------------------------------


def test_vread_of_a_masked_item_looks_missing(world: World) -> None:
    c = world.client
    gp = world.callers["gp"]
    hidden = c.get(f"/fhir/Observation/{world.masked}/_history/1", headers=gp)
    missing = c.get(f"/fhir/Observation/{MISSING}/_history/1", headers=gp)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace(world.masked, MISSING) == missing.text


# -- versions from before a move to another record ---------------------------------------------


def test_versions_from_before_a_move_stay_with_the_record_they_left(world: World) -> None:
    """An identity correction moves an item to another record as a new version: the record it
    left (the person, their professionals) no longer sees it, through history or vread either."""
    c, s = world.client, world.services
    moved = _obs(s, world.a)
    body = dict(s.fhir.read("Observation", moved, ctx=AS_LOCAL_OPERATOR).body or {})
    body["subject"] = {"reference": f"Patient/{world.b}"}
    s.fhir.update("Observation", moved, body, ctx=AS_LOCAL_OPERATOR)
    for caller in ("a", "gp"):
        headers = world.callers[caller]
        assert c.get(f"/fhir/Observation/{moved}", headers=headers).status_code == 403
        # a vread answers as the read does: the item is now in a record the caller has no right on
        assert c.get(f"/fhir/Observation/{moved}/_history/1", headers=headers).status_code == 403
        # a refused _history of an identified item shows nothing (docs/access.md)
        assert c.get(f"/fhir/Observation/{moved}/_history", headers=headers).status_code == 404
        for path in ("/fhir/Observation/_history", "/fhir/Observation/_history?_since=2000-01-01"):
            listed = c.get(path, headers=headers).json()
            ids = [e["resource"]["id"] for e in listed.get("entry", []) if "resource" in e]
            assert moved not in ids, (caller, path)
    # the operator still sees every version
    full = c.get(f"/fhir/Observation/{moved}/_history", headers=world.callers["operator"])
    assert full.json()["total"] == 2


# -- acting for someone one does not represent ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/access/controls", None),
        ("POST", "/access/blocks", {"rpps": GP}),
        ("POST", "/access/care", {"rpps": GP}),
        ("PUT", "/access/preferences", {"emergencyOpposition": True}),
        ("DELETE", f"/access/care/{GP}", None),
        ("GET", "/record/space", None),
        ("POST", "/record/objection", None),
        ("POST", "/record/closure", None),
    ],
)
def test_acting_for_a_record_one_does_not_represent_is_refused_and_audited(
    world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """Refused as for a record that does not exist, and the attempt shows in the history of the
    record it aimed at (a denied request is audited too)."""
    c = world.client

    def history() -> list[Any]:
        found = c.get(
            "/fhir/AuditEvent",
            params={"patient": world.a, "_count": "200"},
            headers=world.callers["a"],
        )
        assert found.status_code == 200
        return [e for e in found.json().get("entry", []) if "acct-b" in orjson.dumps(e).decode()]

    before = len(history())
    refused = c.request(
        method, path, params={"patient": world.a}, json=body, headers=world.callers["b"]
    )
    missing = c.request(
        method, path, params={"patient": MISSING}, json=body, headers=world.callers["b"]
    )
    assert refused.status_code == missing.status_code == 404
    assert refused.text.replace(world.a, MISSING) == missing.text
    assert len(history()) == before + 1


def test_delete_of_a_masked_item_looks_like_that_of_a_missing_one(world: World) -> None:
    """Deleting a missing item succeeds and changes nothing (204): so must deleting one hidden
    from the caller, which stays untouched."""
    c = world.client
    gp = world.callers["gp"]
    hidden = c.delete(f"/fhir/Observation/{world.masked}", headers=gp)
    missing = c.delete(f"/fhir/Observation/{MISSING}", headers=gp)
    assert hidden.status_code == missing.status_code == 204
    assert hidden.text == missing.text == ""
    assert dict(hidden.headers).keys() == dict(missing.headers).keys()
    still = c.get(f"/fhir/Observation/{world.masked}", headers=world.callers["a"])
    assert still.status_code == 200


def test_import_with_scopes_on_some_types_cannot_write_others(world: World) -> None:
    """An input's declared type is not enforced on its lines and the job writes with system
    rights: a backend allowed to import Patients only must not bring in an Observation."""
    c, s = world.client, world.services
    folder = s.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    smuggled = {
        "resourceType": "Observation",
        "id": "smuggled",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/{world.a}"},
    }
    (folder / "Patient.ndjson").write_bytes(orjson.dumps(smuggled))
    backend = Principal(
        Kind.BACKEND,
        "lab-backend",
        client_id="lab-backend",
        scopes=frozenset({"system/Patient.cruds"}),
    )
    body = {"input": [{"type": "Patient", "url": "file:Patient.ndjson"}]}
    kicked = c.post("/fhir/$import", json=body, headers={**ASYNC, **bearer(s, backend)})
    if kicked.status_code == 202:
        status = kicked.headers["Content-Location"].replace("http://127.0.0.1", "")
        _wait(c, status, bearer(s, backend))
    assert kicked.status_code == 403, kicked.text
    assert c.get("/fhir/Observation/smuggled", headers=world.callers["operator"]).status_code == 404


# -- deposits naming their patient by identity ---------------------------------------------------


def test_a_person_cannot_probe_identities_through_deposits(own_world: World) -> None:
    """A person's Observation naming its patient by INS went through identity matching: a known
    INS was refused 403, an unknown one held 202 (in quarantine, queued for the operator), so any
    person could learn whether an INS is known and fill the vigilance queue."""
    from carnet.identity.ins import INS_NIR_OID
    from carnet.identity.nir import make_nir

    c = own_world.client
    known, unknown = make_nir(1, 1985, 7, "75056", 12), make_nir(2, 1990, 1, "13055", 7)
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": INS_NIR_OID, "value": known}],
        "birthDate": "1985-07-04",
    }
    created = c.post("/fhir/Patient", json=patient, headers=own_world.callers["operator"])
    assert created.status_code == 201, created.text
    answers = []
    for nir in (known, unknown):
        body = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
            "subject": {"type": "Patient", "identifier": {"system": INS_NIR_OID, "value": nir}},
        }
        answers.append(c.post("/fhir/Observation", json=body, headers=own_world.callers["b"]))
    assert [a.status_code for a in answers] == [403, 403], [a.text for a in answers]
    assert answers[0].text == answers[1].text
    assert own_world.services.identity.vigilance.queue() == []


# -- visibility flags on the Patient itself --------------------------------------------------------


def test_a_professional_cannot_hide_a_whole_record_from_its_patient(world: World) -> None:
    """INVISIBLE_PATIENT is for an item to be announced; set on the Patient resource it shut the
    person out of their whole record ($everything, $summary, compartment searches: 404)."""
    c = world.client
    flagged = c.post(
        "/access/masks",
        json={"resource": f"Patient/{world.a}", "flag": "INVISIBLE_PATIENT"},
        headers=world.callers["gp"],
    )
    assert flagged.status_code == 400, flagged.text
    own = world.callers["a"]
    assert c.get(f"/fhir/Patient/{world.a}/$everything", headers=own).status_code == 200
    assert c.get(f"/fhir/Patient/{world.a}/Observation", headers=own).status_code == 200
