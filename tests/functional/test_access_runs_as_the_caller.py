"""Access runs as the caller, whatever the path: bulk jobs run as the caller who started them (and
refused accesses to them are audited), the access history shows only what the viewer may see,
a hidden id answers a PUT or a transaction DELETE as a missing one, and a refused break-glass says
why. Each gap a review found is pinned here so it stays closed. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.caller import Kind, Principal, RequestContext
from carnet.fhir.operations.jobs import principal_params
from carnet.policy.enforce import note_care
from tests.support.audit_log import logged_events
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.world_store import WorldStore, world_store_fixture

# Both backends: a security suite: access review reads the audit store.
pytestmark = pytest.mark.both_backends

FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {"Prefer": "respond-async", "Content-Type": "application/fhir+json"}
GP = "10000000001"
MISSING = "00000000-0000-4000-8000-000000000000"
HOST = "http://127.0.0.1"


@dataclass
class World:
    services: Services
    client: TestClient
    a: str  # an adult, parent of c
    b: str  # another patient
    c: str  # a minor a represents
    obs: str  # a's Observation
    masked: str  # a's Observation masked from professionals (MASQUE_PS)
    unannounced: str  # a's Observation hidden from a until announced (INVISIBLE_PATIENT)
    c_obs: str  # c's Observation
    c_private: str  # c's Observation hidden from their representatives
    callers: dict[str, dict[str, str]]


def _obs(services: Services, patient: str) -> str:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    return services.fhir.create("Observation", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _backend(*scopes: str) -> Principal:
    return Principal(Kind.BACKEND, "lab-backend", client_id="lab-backend", scopes=frozenset(scopes))


@dataclass(frozen=True)
class WorldIds:
    a: str
    b: str
    c: str
    obs: str
    masked: str
    unannounced: str
    c_obs: str
    c_private: str


def _people(a: str, b: str, c: str) -> dict[str, Principal]:
    return {
        "a": Principal(Kind.PERSON, "acct-a", patient_id=a),
        "b": Principal(Kind.PERSON, "acct-b", patient_id=b),
        "c": Principal(Kind.PERSON, "acct-c", patient_id=c),
        "gp": Principal(Kind.PROFESSIONAL, "pro-gp", rpps=GP, profession="physician"),
        "operator": TEST_OPERATOR,
        "other_operator": Principal(
            Kind.OPERATOR, "operator:other", scopes=frozenset({"system/*.*"})
        ),
    }


def _write_world(s: Services) -> WorldIds:
    a, b, c = (
        s.fhir.create(
            "Patient", {"resourceType": "Patient", "birthDate": d}, ctx=AS_LOCAL_OPERATOR
        ).stored.res_id
        for d in ("1980-05-01", "1975-03-03", "2016-07-07")
    )
    s.record.representatives.add(c, a, "parent", ctx=AS_LOCAL_OPERATOR)
    obs, masked, unannounced = _obs(s, a), _obs(s, a), _obs(s, a)
    c_obs, c_private = _obs(s, c), _obs(s, c)
    with s.engine.begin() as conn:
        note_care(conn, a, GP, "declared")
    people = _people(a, b, c)

    def as_(name: str) -> RequestContext:
        return RequestContext(actor=people[name].subject, principal=people[name])

    s.controls.set_mask(as_("a"), f"Observation/{masked}", "MASQUE_PS", on=True)
    s.controls.set_mask(as_("gp"), f"Observation/{unannounced}", "INVISIBLE_PATIENT", on=True)
    s.controls.set_mask(
        as_("c"), f"Observation/{c_private}", "INVISIBLE_REPRESENTANTS_LEGAUX", on=True
    )
    return WorldIds(a, b, c, obs, masked, unannounced, c_obs, c_private)


world_store = world_store_fixture(_write_world)  # once per backend; a copy per test


@pytest.fixture
def world(world_store: WorldStore[WorldIds], tmp_path: Path) -> Iterator[World]:
    ids = world_store.ids
    s = build_services(world_store.copy_into(tmp_path / "data"), migrate=False)
    try:
        callers = {name: bearer(s, p) for name, p in _people(ids.a, ids.b, ids.c).items()}
        with TestClient(create_app(s.settings, s), base_url=HOST) as client:
            yield World(services=s, client=client, callers=callers, **asdict(ids))
    finally:
        s.close()


def _wait(client: TestClient, url: str, headers: dict[str, str]) -> Any:
    for _ in range(400):
        response = client.get(url, headers=headers)
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(0.025)
    raise AssertionError("job did not finish")


def _kickoff(c: TestClient, url: str, headers: dict[str, str]) -> str:
    kicked = c.get(url, headers={**ASYNC, **headers})
    assert kicked.status_code == 202, kicked.text
    return str(kicked.headers["Content-Location"]).removeprefix(HOST)


def _lines(c: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    got = c.get(url.removeprefix(HOST), headers=headers)
    assert got.status_code == 200, got.text
    return [orjson.loads(line) for line in got.content.splitlines() if line]


# -- 1. bulk jobs run as the caller who started them ----------------------------------------------


def test_export_exports_only_the_types_the_callers_scopes_grant(world: World) -> None:
    """A backend allowed to read Observations only exported everything once its job started
    (the job ran as the operator); now it gets Observations, and a ``_type`` beyond its scopes
    is refused at kick-off."""
    c, s = world.client, world.services
    lab = bearer(s, _backend("system/Observation.rs"))
    manifest = _wait(c, _kickoff(c, "/fhir/$export", lab), lab)
    assert {o["type"] for o in manifest["output"]} == {"Observation"}
    exported = _lines(c, manifest["output"][0]["url"], lab)
    assert {r["resourceType"] for r in exported} == {"Observation"}
    assert world.obs in {r["id"] for r in exported}
    for asked in ("Patient", "Observation,Patient"):
        refused = c.get(f"/fhir/$export?_type={asked}", headers={**ASYNC, **lab})
        assert refused.status_code == 403, (asked, refused.text)
    typed = _wait(c, _kickoff(c, "/fhir/$export?_type=Observation", lab), lab)
    assert {o["type"] for o in typed["output"]} == {"Observation"}
    # its reads are recorded as the backend's, under the backend's rule
    job_events = [e for e in logged_events(s) if e["source"] == "bulk-export"]
    assert job_events
    assert {(e["actor"], e["role"], e["rule"]) for e in job_events} == {
        ("lab-backend", "backend", "backend-system")
    }


def test_a_restarted_export_job_still_runs_as_its_caller(world: World) -> None:
    """A job picked up again after a restart (no thread for it) runs with the rights recorded at
    kick-off; a job row that records no caller fails rather than run with operator rights."""
    s = world.services
    export = s.bulk_export
    lab = _backend("system/Observation.rs")
    params = {"level": "system", "types": None, "since": None, "patients": None, "base": HOST}
    job = export.jobs.create(
        "export", "urn:x", lab.subject, {**params, "principal": principal_params(lab)}
    )
    as_lab = RequestContext(actor=lab.subject, principal=lab)
    for _ in range(400):
        reply = export.status(job, as_lab)  # not running in this process: started again
        if reply.status != 202:
            break
        time.sleep(0.025)
    assert reply.status == 200 and reply.manifest is not None
    assert {o["type"] for o in reply.manifest["output"]} == {"Observation"}
    legacy = export.jobs.create("export", "urn:x", lab.subject, params)
    for _ in range(400):
        reply = export.status(legacy, as_lab)
        if reply.status != 202:
            break
        time.sleep(0.025)
    assert reply.status == 500
    assert not (s.settings.export_dir / legacy).exists() or not any(
        (s.settings.export_dir / legacy).iterdir()
    )


def test_import_job_writes_as_its_caller(world: World) -> None:
    c, s = world.client, world.services
    folder = s.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.ndjson").write_bytes(orjson.dumps({"resourceType": "Patient", "id": "imp1"}))
    lab = bearer(s, _backend("system/*.cruds"))
    body = {"input": [{"type": "Patient", "url": "file:p.ndjson"}]}
    kicked = c.post("/fhir/$import", json=body, headers={**ASYNC, **lab})
    assert kicked.status_code == 202, kicked.text
    _wait(c, str(kicked.headers["Content-Location"]).removeprefix(HOST), lab)
    job_events = [e for e in logged_events(s) if e["source"] == "bulk-import"]
    assert job_events
    assert {(e["actor"], e["role"]) for e in job_events} == {("lab-backend", "backend")}


# -- 2. refused accesses to another caller's bulk job are audited ------------------------------------


def _finished_jobs(world: World, owner: dict[str, str], patient_id: str) -> tuple[str, str, str]:
    """A finished export and a finished import of ``owner``: the export's status URL, its first
    file's URL, the import's status URL."""
    c, s = world.client, world.services
    status = _kickoff(c, "/fhir/$export", owner)
    manifest = _wait(c, status, owner)
    file_url = str(manifest["output"][0]["url"]).removeprefix(HOST)
    folder = s.settings.import_dir
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{patient_id}.ndjson"
    (folder / name).write_bytes(orjson.dumps({"resourceType": "Patient", "id": patient_id}))
    body = {"input": [{"type": "Patient", "url": f"file:{name}"}]}
    kicked = c.post("/fhir/$import", json=body, headers={**ASYNC, **owner})
    import_status = str(kicked.headers["Content-Location"]).removeprefix(HOST)
    _wait(c, import_status, owner)
    return status, file_url, import_status


def test_refused_bulk_job_accesses_are_audited(world: World) -> None:
    """Polling, cancelling or downloading another caller's job answers the 404 of a missing one
    and left no trace: each refusal is now an audit event naming the caller and the rule."""
    c, s = world.client, world.services
    owner = world.callers["operator"]
    status, file_url, import_status = _finished_jobs(world, owner, "imp2")
    job = status.rsplit("/", 1)[1]
    before = len(logged_events(s))
    other = world.callers["other_operator"]
    attempts = [
        ("GET", status, "export-status"),
        ("DELETE", status, "export-cancel"),
        ("GET", file_url, "export-file"),
        ("GET", import_status, "import-status"),
        ("DELETE", import_status, "import-cancel"),
        ("GET", status.replace(job, MISSING), "export-status"),
    ]
    for method, url, _ in attempts:
        assert c.request(method, url, headers=other).status_code == 404, (method, url)
    refused = [e for e in logged_events(s)[before:] if e["actor"] == "operator:other"]
    assert [(e["action"], e["outcome"]) for e in refused] == [
        (action, 404) for _, _, action in attempts
    ]
    rules = [str(e["rule"]) for e in refused]
    assert all(r.startswith("bulk-job-not-owner") for r in rules[:5]), rules
    assert rules[0] == f"bulk-job-not-owner job:{job}"
    assert rules[5] == "bulk-job-unknown"
    # the owner's jobs are untouched
    assert c.get(status, headers=owner).status_code == 200
    assert c.get(import_status, headers=owner).status_code == 200


def test_owner_bulk_job_accesses_are_audited(world: World) -> None:
    """The owner's own polls, downloads and cancels are accesses too: each is an audit event,
    naming the job (rule ``job:<id>``) or, for a file, the policy rule that allowed it."""
    c, s = world.client, world.services
    owner = world.callers["operator"]
    status, file_url, import_status = _finished_jobs(world, owner, "imp3")
    job, import_job = status.rsplit("/", 1)[1], import_status.rsplit("/", 1)[1]
    before = len(logged_events(s))
    accesses = [
        ("GET", status, "export-status", job, 200),
        ("GET", file_url, "export-file", None, 200),
        ("DELETE", status, "export-cancel", job, 202),
        ("GET", import_status, "import-status", import_job, 200),
        ("DELETE", import_status, "import-cancel", import_job, 202),
    ]
    for method, url, _, _, code in accesses:
        assert c.request(method, url, headers=owner).status_code == code, (method, url)
    mine = [e for e in logged_events(s)[before:] if e["actor"] == "operator:test"]
    assert [(e["action"], e["rule"]) for e in mine] == [
        (action, f"job:{job_id}" if job_id else "operator-system")
        for _, _, action, job_id, _ in accesses
    ]
    assert all(e["outcome"] < 400 for e in mine)


# -- 3. the access history shows only what the viewer may see ----------------------------------------


def _history(world: World, caller: str, patient: str, **params: str) -> dict[str, Any]:
    found = world.client.get(
        "/fhir/AuditEvent",
        params={"patient": patient, "_count": "500", **params},
        headers=world.callers[caller],
    )
    assert found.status_code == 200, found.text
    result: dict[str, Any] = found.json()
    return result


def _revealed(payload: Any) -> str:
    """Everything a response tells, base64 proof parts decoded."""
    text = orjson.dumps(payload).decode()
    decoded: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "valueBase64Binary" or (key in ("event", "slice") and item):
                    decoded.append(base64.b64decode(item).decode(errors="replace"))
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(payload)
    return text + "".join(decoded)


def _entity_refs(event: dict[str, Any]) -> set[str]:
    return {str(e["what"].get("reference")) for e in event.get("entity", [])}


def test_history_hides_events_about_items_hidden_from_the_patient(world: World) -> None:
    """The patient saw the ids and types of their items flagged INVISIBLE_PATIENT (a result to
    be announced) through their access history: its creation, the flagging, every read."""
    c, a = world.client, world.a
    gp_search = c.get("/fhir/Observation", params={"patient": a}, headers=world.callers["gp"])
    assert {e["resource"]["id"] for e in gp_search.json()["entry"]} >= {world.unannounced}
    full = _history(world, "operator", a)
    assert world.unannounced in _revealed(full)  # operators see everything
    own = _history(world, "a", a)
    assert world.unannounced not in _revealed(own)
    assert own["total"] == len(own["entry"])
    assert own["total"] < full["total"]
    paged = _history(world, "a", a, _count="1")
    assert paged["total"] == own["total"] + 1  # reading the history is itself an event
    assert len(paged["entry"]) == 1
    # the professional's search that returned visible and hidden items is shown, with only the
    # visible ones, and its slice (which names the hidden one) withheld from the proof
    searches = [
        e["resource"]
        for e in own["entry"]
        if f"Observation/{world.obs}/_history/1" in _entity_refs(e["resource"])
        and e["resource"]["agent"][0]["who"]["identifier"]["value"] == "pro-gp"
    ]
    assert len(searches) == 1
    parts = [p["url"] for p in searches[0]["extension"][0]["extension"]]
    assert "slice" not in parts and "event" in parts and "leafIndex" in parts
    # read by id: an event about the hidden item only is unknown to the patient
    hidden_ids = [
        e["resource"]["id"]
        for e in full["entry"]
        if _entity_refs(e["resource"]) - {f"Patient/{a}"}
        and all(world.unannounced in r for r in _entity_refs(e["resource"]) - {f"Patient/{a}"})
    ]
    assert hidden_ids
    for event_id in hidden_ids:
        one = c.get(f"/fhir/AuditEvent/{event_id}", headers=world.callers["a"])
        missing = c.get(f"/fhir/AuditEvent/{MISSING}", headers=world.callers["a"])
        assert one.status_code == missing.status_code == 404
    mixed = c.get(f"/fhir/AuditEvent/{searches[0]['id']}", headers=world.callers["a"])
    assert mixed.status_code == 200
    assert world.unannounced not in _revealed(mixed.json())
    # the export: same events, the mixed one with its slice withheld
    export = c.get(f"/fhir/Patient/{a}/$audit-export", headers=world.callers["a"])
    lines = [orjson.loads(line) for line in export.content.splitlines() if line]
    assert world.unannounced not in _revealed(lines)
    exported = {line["id"] for line in lines[1:]}
    assert {e["resource"]["id"] for e in own["entry"]} <= exported
    assert not exported & set(hidden_ids)
    assert any(line.get("slice") is None for line in lines[1:])
    # once announced (the flag lifted), the item shows with its whole history
    gp_ctx = RequestContext(
        actor="pro-gp",
        principal=Principal(Kind.PROFESSIONAL, "pro-gp", rpps=GP, profession="physician"),
    )
    world.services.controls.set_mask(
        gp_ctx, f"Observation/{world.unannounced}", "INVISIBLE_PATIENT", on=False
    )
    assert world.unannounced in _revealed(_history(world, "a", a))


def test_history_hides_from_representatives_what_the_minor_hid(world: World) -> None:
    parent = _history(world, "a", world.c)
    assert world.c_obs in _revealed(parent)
    assert world.c_private not in _revealed(parent)
    assert parent["total"] == len(parent["entry"])
    export = world.client.get(f"/fhir/Patient/{world.c}/$audit-export", headers=world.callers["a"])
    assert export.status_code == 200
    assert world.c_private not in _revealed(
        [orjson.loads(line) for line in export.content.splitlines() if line]
    )
    # the minor themself sees it
    assert world.c_private in _revealed(_history(world, "c", world.c))


# -- 5. a break-glass refused for a block is not told as an emergency opposition ---------------------


def test_break_glass_refusals_say_why(world: World) -> None:
    """A block answered "this patient refused emergency access", the opposition's text and rule:
    each now has its own reason and rule, both audited in the patient's history."""
    c, s = world.client, world.services
    er = Principal(Kind.PROFESSIONAL, "pro-er", rpps="10000000052", profession="physician")
    blocked = Principal(
        Kind.PROFESSIONAL, "pro-blocked", rpps="10000000060", profession="physician"
    )
    as_b = RequestContext(
        actor="acct-b", principal=Principal(Kind.PERSON, "acct-b", patient_id=world.b)
    )
    s.controls.set_block(as_b, None, "10000000060", on=True)
    s.controls.set_preferences(
        RequestContext(
            actor="acct-a", principal=Principal(Kind.PERSON, "acct-a", patient_id=world.a)
        ),
        None,
        emergency_opposition=True,
    )
    answers = {}
    for who, patient in ((er, world.a), (blocked, world.b)):
        answer = c.post(
            "/access/break-glass",
            json={"patient": patient, "reason": "unconscious"},
            headers=bearer(s, who),
        )
        assert answer.status_code == 403, answer.text
        answers[who.subject] = answer.json()["error"]
    assert answers["pro-er"] == "this patient refused emergency access"
    assert answers["pro-blocked"] != answers["pro-er"]
    assert "blocked" in answers["pro-blocked"]
    refused = {
        e["actor"]: e["rule"] for e in logged_events(s) if e["action"] == "break-glass-refused"
    }
    assert refused == {
        "pro-er": "emergency-opposition reason:unconscious",
        "pro-blocked": "pro-blocked reason:unconscious",
    }


# -- 4. a hidden id answers a PUT or a transaction DELETE as a missing one ---------------------------


def _put(world: World, caller: str, res_id: str, patient: str) -> Any:
    body = {
        "resourceType": "Observation",
        "id": res_id,
        "status": "amended",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    return world.client.put(
        f"/fhir/Observation/{res_id}", json=body, headers={**FHIR, **world.callers[caller]}
    )


@pytest.mark.parametrize(("caller", "item"), [("gp", "masked"), ("a", "unannounced")])
def test_a_put_to_a_hidden_id_answers_as_to_a_missing_one(
    world: World, caller: str, item: str
) -> None:
    """A PUT to an id hidden from the caller answered 404 where a PUT to a free id created it
    (201): the caller could tell them apart. Creating with an id of one's choosing is now for
    system callers only, so both answer the same, and neither writes anything."""
    hidden_id = getattr(world, item)
    hidden = _put(world, caller, hidden_id, world.a)
    missing = _put(world, caller, MISSING, world.a)
    assert hidden.status_code == missing.status_code == 405, (hidden.text, missing.text)
    assert hidden.text.replace(hidden_id, MISSING) == missing.text
    operator = world.callers["operator"]
    assert world.client.get(f"/fhir/Observation/{MISSING}", headers=operator).status_code == 404
    kept = world.client.get(f"/fhir/Observation/{hidden_id}", headers=operator).json()
    assert kept["status"] == "final" and kept["meta"]["versionId"] == "1"
    # in a transaction too
    answers = []
    for res_id in (hidden_id, MISSING):
        body = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Observation",
                        "id": res_id,
                        "status": "amended",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
                        "subject": {"reference": f"Patient/{world.a}"},
                    },
                    "request": {"method": "PUT", "url": f"Observation/{res_id}"},
                }
            ],
        }
        answers.append(
            world.client.post("/fhir", json=body, headers={**FHIR, **world.callers[caller]})
        )
    assert answers[0].status_code == answers[1].status_code == 405
    assert answers[0].text.replace(hidden_id, MISSING) == answers[1].text


def test_system_callers_still_create_with_their_own_ids(world: World) -> None:
    created = _put(world, "operator", "client-chosen-1", world.a)
    assert created.status_code == 201, created.text


def test_a_transaction_delete_of_a_hidden_item_answers_as_of_a_missing_one(world: World) -> None:
    """A transaction's DELETE entry on an item hidden from the caller failed the transaction
    (404) where one on a missing item succeeds (204): now both succeed and change nothing, and
    the refusal is an audit event with its rule."""
    c, s = world.client, world.services
    answers = []
    for res_id in (world.masked, MISSING):
        body = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": f"Observation/{res_id}"}}],
        }
        answers.append(c.post("/fhir", json=body, headers={**FHIR, **world.callers["gp"]}))
    hidden, missing = answers
    assert hidden.status_code == missing.status_code == 200, hidden.text
    assert [e["response"]["status"] for e in hidden.json()["entry"]] == ["204 No Content"]
    assert hidden.json()["entry"] == missing.json()["entry"]
    kept = c.get(f"/fhir/Observation/{world.masked}", headers=world.callers["a"])
    assert kept.status_code == 200
    refusals = [
        e
        for e in logged_events(s)
        if e["actor"] == "pro-gp" and e["action"] == "delete" and e["outcome"] == 404
    ]
    assert len(refusals) == 1
    # named in its patient's slice, so the refusal is in their access history
    assert refusals[0]["resources"] == []
    assert len(refusals[0]["subjects"]) == 1
    # no event claims the hidden item was deleted
    claimed = [
        e
        for e in logged_events(s)
        if e["action"] == "delete"
        and e["outcome"] < 400
        and f"Observation/{world.masked}" in e["resources"]
    ]
    assert claimed == []


def test_a_conditional_update_matching_nothing_creates_for_any_writer(world: World) -> None:
    """A conditional PUT in a transaction that matches nothing creates under an id the server
    mints: a plain create, allowed to a person on their own record (it answered 405 once, when
    update-as-create became for system callers)."""
    body = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "identifier": [{"system": "urn:example:self", "value": "weight-1"}],
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                    "subject": {"reference": f"Patient/{world.a}"},
                },
                "request": {
                    "method": "PUT",
                    "url": "Observation?identifier=urn:example:self|weight-1",
                },
            }
        ],
    }
    first = world.client.post("/fhir", json=body, headers={**FHIR, **world.callers["a"]})
    assert first.status_code == 200, first.text
    (entry,) = first.json()["entry"]
    assert entry["response"]["status"] == "201 Created"
    created = entry["response"]["location"].split("/")[1]
    again = world.client.post("/fhir", json=body, headers={**FHIR, **world.callers["a"]})
    assert again.json()["entry"][0]["response"]["location"].split("/")[1] == created
    # another person's conditional PUT into a's record is still refused
    other = world.client.post("/fhir", json=body, headers={**FHIR, **world.callers["b"]})
    assert other.status_code == 403, other.text
