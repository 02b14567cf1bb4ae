"""The patient's controls over HTTP: masking, blocking, care relationships, preferences,
break-glass and its alert, and the access history reserved to the patient and representatives.
Every decision, allowed or refused, is in the audit log with its rule. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.caller import Kind, Principal
from tests.support.audit_log import logged_events
from tests.support.auth import bearer
from tests.support.authn import PASSWORD
from tests.support.caller import AS_LOCAL_OPERATOR

# Both backends: a security suite: objections and masks filter stored records.
pytestmark = pytest.mark.both_backends

FHIR = {"Content-Type": "application/fhir+json"}
GP, NURSE, ER_DOCTOR = "10000000011", "10000000029", "10000000052"


@dataclass
class Setup:
    services: Services
    client: TestClient
    a: str
    b: str
    doc: str
    h: dict[str, dict[str, str]]


def _obs(patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


@pytest.fixture
def setup(services: Services) -> Iterator[Setup]:
    fhir = services.fhir
    a = fhir.create(
        "Patient", {"resourceType": "Patient", "birthDate": "1970-01-01"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    b = fhir.create(
        "Patient", {"resourceType": "Patient", "birthDate": "1971-01-01"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    doc = fhir.create("Observation", _obs(a), ctx=AS_LOCAL_OPERATOR).stored.res_id
    people = {
        "a": Principal(Kind.PERSON, "acct-a", patient_id=a),
        "b": Principal(Kind.PERSON, "acct-b", patient_id=b),
        "gp": Principal(Kind.PROFESSIONAL, "pro-gp", rpps=GP, profession="physician"),
        "nurse": Principal(Kind.PROFESSIONAL, "pro-nurse", rpps=NURSE, profession="nurse"),
        "er": Principal(Kind.PROFESSIONAL, "pro-er", rpps=ER_DOCTOR, profession="physician"),
        "operator": Principal(Kind.OPERATOR, "operator:t", scopes=frozenset({"system/*.*"})),
    }
    headers = {name: bearer(services, p) for name, p in people.items()}
    with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as c:
        yield Setup(services, c, a, b, doc, headers)


def _person_with_factors(services: Services, patient_id: str) -> tuple[dict[str, str], Any]:
    """A real account for the patient (password and TOTP), its bearer headers and a step-up."""
    account_id = services.accounts.create_person(f"{patient_id}@exemple.fr", PASSWORD, patient_id)
    totp = pyotp.parse_uri(services.accounts.enroll_totp(account_id))
    headers = bearer(services, Principal(Kind.PERSON, account_id, patient_id=patient_id))
    return headers, {"stepUp": {"password": PASSWORD, "code": totp.now()}}


def test_care_declaration_mask_and_medecin_traitant(setup: Setup) -> None:
    c, h = setup.client, setup.h
    path = f"/fhir/Observation/{setup.doc}"
    assert c.get(path, headers=h["nurse"]).status_code == 403  # no care relationship yet
    assert c.post("/access/care", json={"rpps": NURSE}, headers=h["a"]).status_code == 200
    assert (
        c.post(
            "/access/care", json={"rpps": GP, "medecinTraitant": True}, headers=h["a"]
        ).status_code
        == 200
    )
    assert c.get(path, headers=h["nurse"]).status_code == 200
    r = c.post(
        "/access/masks",
        json={"resource": f"Observation/{setup.doc}", "flag": "MASQUE_PS"},
        headers=h["a"],
    )
    assert r.status_code == 200, r.text
    assert c.get(path, headers=h["nurse"]).status_code == 404  # absent, as if it did not exist
    assert c.get(path, headers=h["gp"]).status_code == 200  # the médecin traitant still sees it
    listing = c.get("/fhir/Observation", params={"patient": setup.a}, headers=h["nurse"]).json()
    assert listing["total"] == 0
    controls = c.get("/access/controls", headers=h["a"]).json()
    assert controls["masks"] == [{"resource": f"Observation/{setup.doc}", "flag": "MASQUE_PS"}]
    assert {x["rpps"] for x in controls["care"]} == {NURSE, GP}
    r = c.post(
        "/access/masks/remove",
        json={"resource": f"Observation/{setup.doc}", "flag": "MASQUE_PS"},
        headers=h["a"],
    )
    assert r.status_code == 200
    assert c.get(path, headers=h["nurse"]).status_code == 200


def test_a_person_cannot_control_someone_elses_record(setup: Setup) -> None:
    c, h = setup.client, setup.h
    r = c.post(
        "/access/masks",
        json={"resource": f"Observation/{setup.doc}", "flag": "MASQUE_PS"},
        headers=h["b"],
    )
    assert r.status_code == 404
    assert (
        c.post(
            "/access/blocks", params={"patient": setup.a}, json={"rpps": GP}, headers=h["b"]
        ).status_code
        == 404
    )
    assert c.get("/access/controls", params={"patient": setup.a}, headers=h["b"]).status_code == 404
    assert c.post("/access/blocks", json={"rpps": GP}, headers=h["gp"]).status_code == 403  # guard
    assert c.post("/access/blocks", json={"rpps": "12"}, headers=h["a"]).status_code == 400
    # A professional may not mask; a patient may not hide items from themself.
    r = c.post(
        "/access/masks",
        json={"resource": f"Observation/{setup.doc}", "flag": "INVISIBLE_PATIENT"},
        headers=h["a"],
    )
    assert r.status_code == 400


def test_block_overrides_care(setup: Setup) -> None:
    c, h = setup.client, setup.h
    c.post("/access/care", json={"rpps": NURSE}, headers=h["a"])
    assert c.post("/access/blocks", json={"rpps": NURSE}, headers=h["a"]).status_code == 200
    assert c.get(f"/fhir/Observation/{setup.doc}", headers=h["nurse"]).status_code == 403
    r = c.post("/fhir/Observation", json=_obs(setup.a), headers={**FHIR, **h["nurse"]})
    assert r.status_code == 403
    # Lifting the block asks for the password and a second-factor code again (tests/functional/
    # test_step_up.py): the patient's real account.
    assert c.delete(f"/access/blocks/{NURSE}", headers=h["a"]).status_code == 401
    headers, proof = _person_with_factors(setup.services, setup.a)
    lifted = c.request("DELETE", f"/access/blocks/{NURSE}", json=proof, headers=headers)
    assert lifted.status_code == 200
    assert c.get(f"/fhir/Observation/{setup.doc}", headers=h["nurse"]).status_code == 200


def test_break_glass_is_limited_audited_alerted_and_shown_to_the_patient(setup: Setup) -> None:
    c, h = setup.client, setup.h
    path = f"/fhir/Observation/{setup.doc}"
    assert c.get(path, headers=h["er"]).status_code == 403
    r = c.post(
        "/access/break-glass", json={"patient": setup.a, "reason": "because"}, headers=h["er"]
    )
    assert r.status_code == 400
    r = c.post(
        "/access/break-glass", json={"patient": setup.a, "reason": "unconscious"}, headers=h["er"]
    )
    assert r.status_code == 200, r.text
    assert r.json()["expires"] > "2026"
    assert c.get(path, headers=h["er"]).status_code == 200
    assert (
        c.post(
            "/access/break-glass",
            json={"patient": setup.a, "reason": "unconscious"},
            headers=h["a"],
        ).status_code
        == 403
    )
    alerts = c.get("/access/alerts", headers=h["operator"]).json()["alerts"]
    assert [(x["kind"], x["patient"], x["subject"]) for x in alerts] == [
        ("break-glass", setup.a, ER_DOCTOR)
    ]
    assert c.get("/access/alerts", headers=h["a"]).status_code == 403
    glass = [
        e
        for e in logged_events(setup.services)
        if e["action"] == "break-glass" and e["rule"] != "controls-refused"  # not the bad reason
    ]
    assert [(e["actor"], e["purpose"], e["outcome"]) for e in glass] == [
        ("pro-er", "emergency", 200)
    ]
    history = c.get("/fhir/AuditEvent", params={"patient": setup.a}, headers=h["a"]).json()
    assert glass[0]["id"] in {e["resource"]["id"] for e in history["entry"]}  # the patient sees it


def test_emergency_opposition_is_respected(setup: Setup) -> None:
    c, h = setup.client, setup.h
    r = c.put("/access/preferences", json={"emergencyOpposition": True}, headers=h["a"])
    assert r.status_code == 200 and r.json()["emergencyOpposition"] is True
    r = c.post(
        "/access/break-glass", json={"patient": setup.a, "reason": "unconscious"}, headers=h["er"]
    )
    assert r.status_code == 403
    assert c.get(f"/fhir/Observation/{setup.doc}", headers=h["er"]).status_code == 403
    refused = [e for e in logged_events(setup.services) if e["action"] == "break-glass-refused"]
    assert len(refused) == 1 and refused[0]["outcome"] == 403
    assert (
        c.put("/access/preferences", json={"researchOptOut": "yes"}, headers=h["a"]).status_code
        == 400
    )
    assert setup.services.research_optout.opted_out(setup.a) is False
    c.put("/access/preferences", json={"researchOptOut": True}, headers=h["a"])
    assert setup.services.research_optout.opted_out(setup.a) is True


def test_access_history_is_for_the_patient_and_operators(setup: Setup) -> None:
    c, h = setup.client, setup.h
    assert c.get("/fhir/AuditEvent", params={"patient": setup.a}, headers=h["a"]).status_code == 200
    for who in ("b", "gp", "nurse"):
        r = c.get("/fhir/AuditEvent", params={"patient": setup.a}, headers=h[who])
        assert r.status_code == 403, who
        assert c.get(f"/fhir/Patient/{setup.a}/$audit-export", headers=h[who]).status_code == 403
    assert (
        c.get("/fhir/AuditEvent", params={"patient": setup.a}, headers=h["operator"]).status_code
        == 200
    )
    own = c.get(
        "/fhir/AuditEvent", params={"patient": setup.a, "_count": "1"}, headers=h["a"]
    ).json()
    event_id = own["entry"][0]["resource"]["id"]
    assert c.get(f"/fhir/AuditEvent/{event_id}", headers=h["a"]).status_code == 200
    assert c.get(f"/fhir/AuditEvent/{event_id}", headers=h["b"]).status_code == 404


def test_a_refused_read_of_a_history_entry_is_audited_as_refused(setup: Setup) -> None:
    """Reading an entry of someone else's access history by id answers 404, but the log kept it
    as a successful read (outcome 200) in that patient's history: the patient was told that a
    stranger had read their history."""
    c, h = setup.client, setup.h
    own = c.get("/fhir/AuditEvent", params={"patient": setup.a}, headers=h["a"]).json()
    event_id = own["entry"][-1]["resource"]["id"]  # the creation of a's Patient
    before = len(logged_events(setup.services))
    assert c.get(f"/fhir/AuditEvent/{event_id}", headers=h["b"]).status_code == 404
    recorded = [e for e in logged_events(setup.services)[before:] if e["actor"] == "acct-b"]
    assert [(e["action"], e["outcome"]) for e in recorded] == [("read", 404)]
    history = c.get("/fhir/AuditEvent", params={"patient": setup.a}, headers=h["a"]).json()
    by_b = [
        e["resource"]["outcomeDesc"]
        for e in history["entry"]
        if e["resource"]["agent"][0]["who"]["identifier"]["value"] == "acct-b"
    ]
    assert by_b == ["HTTP 404"]  # a sees the refused attempt, not a read
    # the patient's own read of the entry stays a successful read
    before = len(logged_events(setup.services))
    assert c.get(f"/fhir/AuditEvent/{event_id}", headers=h["a"]).status_code == 200
    recorded = [e for e in logged_events(setup.services)[before:] if e["actor"] == "acct-a"]
    assert [(e["action"], e["outcome"]) for e in recorded] == [("read", 200)]


def test_a_read_of_an_audit_event_that_does_not_exist_is_audited(setup: Setup) -> None:
    """Every access, allowed or denied, is audited (docs/audit.md: any failure, 404 included):
    an AuditEvent id that names no event answered 404 and left no trace, so ids could be tried
    one after another unseen, while the same 404 for someone else's event is recorded."""
    c, h = setup.client, setup.h
    made_up = "0190f0e0-0000-7000-8000-000000000000"
    before = len(logged_events(setup.services))
    answer = c.get(f"/fhir/AuditEvent/{made_up}", headers=h["b"])
    assert answer.status_code == 404
    recorded = [e for e in logged_events(setup.services)[before:] if e["actor"] == "acct-b"]
    assert [(e["action"], e["outcome"]) for e in recorded] == [("read", 404)]


def test_every_decision_is_audited_with_its_rule(setup: Setup) -> None:
    c, h = setup.client, setup.h
    before = len(logged_events(setup.services))
    c.post("/access/care", json={"rpps": NURSE}, headers=h["a"])
    assert c.get(f"/fhir/Observation/{setup.doc}", headers=h["nurse"]).status_code == 200
    assert c.get(f"/fhir/Observation/{setup.doc}", headers=h["gp"]).status_code == 403
    assert c.get("/fhir/Patient").status_code == 401
    events = logged_events(setup.services)[before:]
    reads = [e for e in events if e["action"] == "read" and e["type"] == "Observation"]
    assert [(e["actor"], e["outcome"], e["rule"]) for e in reads] == [
        ("pro-nurse", 200, "nurse-read"),
        ("pro-gp", 403, "no-rule"),
    ]
    denied = [e for e in events if e["action"] == "denied"]
    assert [(e["outcome"], e["rule"]) for e in denied] == [(401, "authentication")]


def test_an_encounter_creates_the_care_relationship_of_its_practitioners(setup: Setup) -> None:
    c, h = setup.client, setup.h
    assert c.get(f"/fhir/Observation/{setup.doc}", headers=h["nurse"]).status_code == 403
    practitioner = {
        "resourceType": "Practitioner",
        "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": NURSE}],
    }
    pract_id = c.post(
        "/fhir/Practitioner", json=practitioner, headers={**FHIR, **h["operator"]}
    ).json()["id"]
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{setup.a}"},
        "participant": [{"individual": {"reference": f"Practitioner/{pract_id}"}}],
    }
    r = c.post("/fhir/Encounter", json=encounter, headers={**FHIR, **h["operator"]})
    assert r.status_code == 201, r.text
    assert c.get(f"/fhir/Observation/{setup.doc}", headers=h["nurse"]).status_code == 200
    care = c.get("/access/controls", headers=h["a"]).json()["care"]
    assert {"rpps": NURSE, "source": "encounter", "medecinTraitant": False} in care


def test_refused_controls_are_audited(setup: Setup) -> None:
    c, h = setup.client, setup.h
    before = len(logged_events(setup.services))
    r = c.post("/access/blocks", json={"rpps": "12"}, headers=h["a"])
    assert r.status_code == 400
    r = c.post(
        "/access/masks", json={"resource": "Observation", "flag": "MASQUE_PS"}, headers=h["a"]
    )
    assert r.status_code == 400
    r = c.post(
        "/access/break-glass", json={"patient": "nobody", "reason": "unconscious"}, headers=h["er"]
    )
    assert r.status_code == 404
    refused = [e for e in logged_events(setup.services)[before:] if e["rule"] == "controls-refused"]
    assert [(e["action"], e["outcome"], e["actor"]) for e in refused] == [
        ("block", 400, "acct-a"),
        ("mask", 400, "acct-a"),
        ("break-glass", 404, "pro-er"),
    ]
