"""The audit log seen through the FHIR API, on SQLite and PostgreSQL: one event per interaction,
atomic with writes, the patient's history with proofs, and the log is read-only."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services
from carnet.audit import checkpoints, merkle
from carnet.audit.events import leaf_data
from carnet.audit.models import audit_event_patient
from carnet.fhir.models import resource
from tests.spec.helpers import FHIR_JSON, observation, patient
from tests.support.audit_log import logged_events
from tests.support.caller import AS_LOCAL_OPERATOR

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def _services(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def _events(client: TestClient) -> list[dict[str, Any]]:
    return logged_events(_services(client))


def _slices(client: TestClient) -> list[dict[str, Any]]:
    with _services(client).engine.connect() as conn:
        rows = conn.execute(select(audit_event_patient.c.slice)).scalars()
        return [orjson.loads(s) for s in rows]


class Recorder:
    """Runs one request and returns the events it appended."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def __call__(self, method: str, url: str, **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
        before = len(_events(self.client))
        response = self.client.request(method, url, **kwargs)
        return response, _events(self.client)[before:]


def _create(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_one_event_per_interaction(client: TestClient) -> None:
    run = Recorder(client)
    r, ev = run("POST", "/fhir/Patient", json=patient(), headers=FHIR_JSON)
    pid = r.json()["id"]
    assert [(e["action"], e["outcome"]) for e in ev] == [("create", 201)]
    cases: list[tuple[str, str, dict[str, Any], str, int]] = [
        ("GET", f"/fhir/Patient/{pid}", {}, "read", 200),
        ("PUT", f"/fhir/Patient/{pid}", {"json": patient(given="Anne", id=pid)}, "update", 200),
        ("GET", f"/fhir/Patient/{pid}/_history/1", {}, "vread", 200),
        ("GET", f"/fhir/Patient/{pid}/_history", {}, "history", 200),
        ("GET", "/fhir/Patient/_history", {}, "history", 200),
        ("GET", f"/fhir/Observation?subject=Patient/{pid}", {}, "search", 200),
        ("POST", "/fhir/Observation", {"json": observation(pid)}, "create", 201),
        ("DELETE", "/fhir/Observation/not-there", {}, "delete", 204),
        ("GET", "/fhir/Patient/not-there", {}, "read", 404),
        ("GET", f"/fhir/Patient/{pid}/_history/9", {}, "vread", 404),
        ("POST", "/fhir/Observation", {"json": {"resourceType": "Observation"}}, "create", 0),
        (
            "PUT",
            f"/fhir/Patient/{pid}",
            {"json": patient(given="Eve", id=pid), "headers": {"If-Match": 'W/"1"', **FHIR_JSON}},
            "update",
            412,
        ),
        ("GET", "/fhir/NoSuchType?x=1", {}, "search", 404),
    ]
    for method, url, kwargs, action, status in cases:
        kwargs.setdefault("headers", FHIR_JSON)
        r, ev = run(method, url, **kwargs)
        expected = status or r.status_code
        assert r.status_code == expected, (url, r.text)
        assert [(e["action"], e["outcome"]) for e in ev] == [(action, expected)], url
    r, ev = run("DELETE", f"/fhir/Patient/{pid}")
    assert [(e["action"], e["outcome"]) for e in ev] == [("delete", 204)]
    r, ev = run("GET", f"/fhir/Patient/{pid}")
    assert r.status_code == 410 and [(e["action"], e["outcome"]) for e in ev] == [("read", 410)]
    assert all(e["actor"] == "operator:test" and e["source"] for e in _events(client))


def _tx(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def test_transaction_and_batch_entries(client: TestClient) -> None:
    run = Recorder(client)
    pid = _create(client, patient())
    tx = _tx(
        "transaction",
        [
            {
                "fullUrl": "urn:uuid:a",
                "resource": observation(pid),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": patient(id=pid, given="Zoé"),
                "request": {"method": "PUT", "url": f"Patient/{pid}"},
            },
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
        ],
    )
    r, ev = run("POST", "/fhir", json=tx, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert sorted(e["action"] for e in ev) == ["create", "read", "update"]
    batch = _tx(
        "batch",
        [
            {"resource": observation(pid), "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {"request": {"method": "DELETE", "url": "Observation/missing"}},
        ],
    )
    r, ev = run("POST", "/fhir", json=batch, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert [(e["action"], e["outcome"]) for e in ev] == [
        ("create", 201),
        ("get", 404),
        ("delete", 204),
    ]


def test_a_write_that_rolls_back_leaves_only_its_failure(client: TestClient) -> None:
    run = Recorder(client)
    pid = _create(client, patient())
    tx = _tx(
        "transaction",
        [
            {"resource": observation(pid), "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": patient(id=pid, given="Late"),
                "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"99"'},
            },
        ],
    )
    services = _services(client)
    with services.engine.connect() as conn:
        rows_before = len(conn.execute(select(resource.c.seq)).all())
    r, ev = run("POST", "/fhir", json=tx, headers=FHIR_JSON)
    assert r.status_code == 412, r.text  # the POST ran first, then the PUT failed: all rolled back
    assert [(e["action"], e["outcome"]) for e in ev] == [("transaction", 412)]
    with services.engine.connect() as conn:
        assert len(conn.execute(select(resource.c.seq)).all()) == rows_before


def test_an_invalid_transaction_is_audited_and_writes_nothing(client: TestClient) -> None:
    run = Recorder(client)
    pid = _create(client, patient())
    bad = {**observation(pid), "status": 42}  # refused by validation, before the transaction opens
    tx = _tx(
        "transaction",
        [
            {"resource": observation(pid), "request": {"method": "POST", "url": "Observation"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
        ],
    )
    services = _services(client)
    with services.engine.connect() as conn:
        rows_before = len(conn.execute(select(resource.c.seq)).all())
    r, ev = run("POST", "/fhir", json=tx, headers=FHIR_JSON)
    assert r.status_code == 422, r.text
    assert [(e["action"], e["outcome"]) for e in ev] == [("transaction", 422)]
    with services.engine.connect() as conn:
        assert len(conn.execute(select(resource.c.seq)).all()) == rows_before


def test_no_write_without_its_event(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services(client)
    pid = _create(client, patient())
    _create(client, observation(pid))
    refs = {r for s in _slices(client) for r in s["resources"]}
    with services.engine.connect() as conn:
        for t, i, v in conn.execute(
            select(resource.c.res_type, resource.c.res_id, resource.c.version)
        ):
            assert f"{t}/{i}/_history/{v}" in refs

    def broken(*_args: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(services.audit.store, "append", broken)
    with pytest.raises(RuntimeError):  # the test client re-raises what the server answers 500 to
        client.post("/fhir/Patient", json=patient(given="Lost"), headers=FHIR_JSON)
    with services.engine.connect() as conn:
        count = len(
            conn.execute(select(resource.c.seq).where(resource.c.res_type == "Patient")).all()
        )
    assert count == 1  # the patient whose event could not be written was not written either


def test_a_session_holds_its_events_until_its_unit_commits(client: TestClient) -> None:
    """The FHIR session owes its interaction's events and hands them over as its unit commits;
    the audit service keeps no state per unit of work."""
    services = _services(client)
    pid = _create(client, patient())
    before = len(_events(client))
    with services.fhir.session(AS_LOCAL_OPERATOR, "read", "Patient", pid) as session:
        session.read("Patient", pid)
        held = [(p.action, p.res_type, p.touched) for p in session.pending.events]
        assert held == [("read", "Patient", [("Patient", pid, 1, pid)])]
        assert len(_events(client)) == before  # nothing logged while the unit is open
    logged = _events(client)[before:]
    assert [(e["action"], e["outcome"]) for e in logged] == [("read", 200)]
    assert not hasattr(services.audit, "expect") and not hasattr(services.audit, "record")


def test_search_records_each_patient_in_their_own_slice(client: TestClient) -> None:
    p1, p2 = _create(client, patient()), _create(client, patient(family="Martin"))
    o1, o2 = _create(client, observation(p1)), _create(client, observation(p2))
    run = Recorder(client)
    r, ev = run("GET", "/fhir/Observation?code=http://loinc.org|8302-2")
    assert r.json()["total"] == 2
    assert len(ev) == 1 and len(ev[0]["subjects"]) == 2
    for pid, oid, other in ((p1, o1, o2), (p2, o2, o1)):
        page = client.get(f"/fhir/AuditEvent?patient={pid}").json()
        searches = [e["resource"] for e in page["entry"] if e["resource"]["id"] == ev[0]["id"]]
        assert len(searches) == 1
        refs = [x["what"]["reference"] for x in searches[0]["entity"]]
        assert f"Patient/{pid}" in refs and f"Observation/{oid}/_history/1" in refs
        assert not any(other in ref or (p1 if pid == p2 else p2) in ref for ref in refs)


def _proof(resource_: dict[str, Any]) -> dict[str, list[Any]]:
    ext = next(e for e in resource_["extension"] if e["url"] == "urn:carnet:audit-proof")
    out: dict[str, list[Any]] = {}
    for part in ext["extension"]:
        value = part.get("valueBase64Binary", part.get("valueString"))
        out.setdefault(part["url"], []).append(value)
    return out


def test_history_shape_paging_and_proofs(client: TestClient) -> None:
    pid = _create(client, patient())
    for _ in range(4):
        client.get(f"/fhir/Patient/{pid}")
    public_key = _services(client).audit.public_key
    page = client.get(f"/fhir/AuditEvent?patient={pid}&_count=3").json()
    assert page["resourceType"] == "Bundle" and page["type"] == "searchset"
    assert page["total"] == 6  # create, 4 reads, and this read of the audit log
    assert len(page["entry"]) == 3
    assert any(link["relation"] == "next" for link in page["link"])
    recorded = [e["resource"]["recorded"] for e in page["entry"]]
    assert recorded == sorted(recorded, reverse=True)
    first = page["entry"][0]["resource"]
    assert first["subtype"][0] == {
        "system": "http://hl7.org/fhir/restful-interaction",
        "code": "search-type",
    }
    assert first["type"]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
    assert first["agent"][0]["requestor"] is True
    assert first["agent"][0]["who"]["identifier"]["value"] == "operator:test"
    assert first["agent"][0]["network"]["address"]
    assert first["outcome"] == "0" and first["source"]["observer"]
    assert {"what": {"reference": f"Patient/{pid}"}}.items() <= first["entity"][0].items()
    for entry in page["entry"]:
        proof = _proof(entry["resource"])
        cp = checkpoints.open_note(proof["checkpoint"][0], public_key)
        index, size = int(proof["leafIndex"][0]), int(proof["treeSize"][0])
        body = base64.b64decode(proof["event"][0])
        leaf = merkle.leaf_hash(leaf_data(index, body))
        path = [base64.b64decode(h) for h in proof.get("inclusionProof", [])]
        assert size == cp.size and merkle.verify_inclusion(leaf, index, size, path, cp.root)
        assert orjson.loads(body)["id"] == entry["resource"]["id"]
    second = client.get(f"/fhir/AuditEvent?patient={pid}&_count=3&_offset=3").json()
    assert second["total"] == 7 and len(second["entry"]) == 3  # its own read was added first
    last = client.get(f"/fhir/AuditEvent?patient={pid}&_count=3&_offset=6").json()
    assert [e["resource"]["subtype"][0]["code"] for e in last["entry"][-1:]] == ["create"]


def test_reading_the_audit_log_is_audited(client: TestClient) -> None:
    pid = _create(client, patient())
    run = Recorder(client)
    r, ev = run("GET", f"/fhir/AuditEvent?patient={pid}")
    assert r.status_code == 200
    assert [(e["action"], e["type"]) for e in ev] == [("search", "AuditEvent")]
    event_id = r.json()["entry"][-1]["resource"]["id"]
    r, ev = run("GET", f"/fhir/AuditEvent/{event_id}")
    assert r.status_code == 200 and r.json()["id"] == event_id
    assert [(e["action"], e["type"]) for e in ev] == [("read", "AuditEvent")]
    assert f"AuditEvent/{event_id}" in ev[0]["resources"]
    assert client.get("/fhir/AuditEvent/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get("/fhir/AuditEvent").status_code == 400


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/fhir/AuditEvent"),
        ("PUT", "/fhir/AuditEvent/x"),
        ("DELETE", "/fhir/AuditEvent/x"),
        ("PATCH", "/fhir/AuditEvent/x"),
    ],
)
def test_clients_cannot_write_the_log(client: TestClient, method: str, url: str) -> None:
    r = client.request(method, url, json={"resourceType": "AuditEvent"}, headers=FHIR_JSON)
    assert r.status_code == 405
    assert r.json()["resourceType"] == "OperationOutcome"


def docs_verifier() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    script = next(b for b in blocks if "def root_from_inclusion" in b)
    return script


def test_the_documented_verifier_accepts_an_export(client: TestClient, tmp_path: Path) -> None:
    pid = _create(client, patient())
    other = _create(client, patient(family="Other"))
    _create(client, observation(pid))
    _create(client, observation(other))
    client.get("/fhir/Observation")
    for _ in range(5):
        client.get(f"/fhir/Patient/{pid}")
    r = client.get(f"/fhir/Patient/{pid}/$audit-export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+ndjson")
    export = tmp_path / "history.ndjson"
    export.write_bytes(r.content)
    script = tmp_path / "verify_export.py"
    script.write_text(docs_verifier(), encoding="utf-8")
    key = base64.b64encode(_services(client).audit.public_key).decode()
    done = subprocess.run(
        [sys.executable, str(script), str(export), key], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # create, its observation, the search that returned it, 5 reads, and the export itself
    assert done.stdout.startswith("OK: 9 events"), done.stdout
    lines = export.read_bytes().splitlines()
    line = orjson.loads(lines[3])
    body = base64.b64decode(line["event"]).replace(b'"operator:test"', b'"someone-else"')
    line["event"] = base64.b64encode(body).decode()
    export.write_bytes(b"\n".join([*lines[:3], orjson.dumps(line), *lines[4:]]) + b"\n")
    done = subprocess.run(
        [sys.executable, str(script), str(export), key], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and "FAILED" in done.stdout


def test_batch_entries_refused_before_the_store_are_audited(client: TestClient) -> None:
    run = Recorder(client)
    bad = observation("p1")
    bad["status"] = "bogus"
    batch = _tx(
        "batch",
        [
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
            {"resource": observation("p1"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        ],
    )
    r, ev = run("POST", "/fhir", json=batch, headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"][:3] for e in r.json()["entry"]]
    assert statuses == ["422", "400", "201"]
    assert [(e["action"], e["outcome"]) for e in ev] == [
        ("post", 422),
        ("post", 400),
        ("create", 201),
    ]


def test_audit_events_cannot_be_smuggled_in_a_transaction(client: TestClient) -> None:
    event = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
        "recorded": "2024-01-01T00:00:00Z",
        "agent": [{"requestor": True, "who": {"display": "x"}}],
        "source": {"observer": {"display": "x"}},
    }
    tx = _tx(
        "transaction", [{"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}]
    )
    r = client.post("/fhir", json=tx, headers=FHIR_JSON)
    assert r.status_code == 405
    assert r.json()["resourceType"] == "OperationOutcome"
