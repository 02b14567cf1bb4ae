"""Deposits through the FHIR API on SQLite and PostgreSQL: a document naming its patient by INS or by
a contained Patient is attached on a link and held in quarantine (202 Accepted) otherwise."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services, create_app
from carnet.caller import Kind, Principal
from carnet.identity.decisions import VigilanceError
from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits, apply_to_patient
from carnet.identity.models import identity, quarantine
from carnet.identity.nir import make_nir
from carnet.identity.register import InMemoryRegister
from tests.spec.helpers import observation, patient
from tests.support.auth import bearer
from tests.support.caller import AS_LOCAL_OPERATOR

JEAN = Traits.create("Dupont", ["Jean", "Paul"], "1985-07-04", "M", "75056")
NIR = make_nir(1, 1985, 7, "75056", 12)
OTHER_NIR = make_nir(2, 1990, 1, "13055", 7)


def _patient(traits: Traits = JEAN, status: InsStatus = InsStatus.QUAL) -> dict[str, Any]:
    return apply_to_patient(
        {"resourceType": "Patient"}, traits, status, Ins(INS_NIR_OID, NIR), outgoing=False
    )


def _by_ins(nir: str = NIR) -> dict[str, Any]:
    body = observation("x")
    body["subject"] = {"type": "Patient", "identifier": {"system": INS_NIR_OID, "value": nir}}
    return body


def _with_contained(traits: Traits) -> dict[str, Any]:
    body = observation("x")
    contained = apply_to_patient(
        {"resourceType": "Patient", "id": "p"}, traits, InsStatus.PROV, None
    )
    body["contained"] = [contained]
    body["subject"] = {"reference": "#p"}
    return body


def _record_size(client: TestClient, pid: str) -> int:
    found = client.get("/fhir/Observation", params={"subject": f"Patient/{pid}"})
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


def _setup(client: TestClient, services: Services) -> str:
    register = InMemoryRegister()
    register.add(Ins(INS_NIR_OID, NIR), JEAN)
    services.identity.register = register
    created = client.post("/fhir/Patient", json=_patient())
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_known_qualified_ins_is_attached(client: TestClient, services: Services) -> None:
    pid = _setup(client, services)
    sent = client.post("/fhir/Observation", json=_by_ins())
    assert sent.status_code == 201, sent.text
    assert sent.json()["subject"] == {"reference": f"Patient/{pid}"}
    # A contained Patient with the same traits: matched, attached, the contained copy dropped.
    contained = client.post("/fhir/Observation", json=_with_contained(JEAN))
    assert contained.status_code == 201, contained.text
    assert contained.json()["subject"] == {"reference": f"Patient/{pid}"}
    assert "contained" not in contained.json()
    assert _record_size(client, pid) == 2
    with services.engine.connect() as conn:
        assert conn.execute(select(quarantine)).first() is None


def test_a_deposit_for_a_deleted_patient_is_held_not_attached(
    client: TestClient, services: Services
) -> None:
    pid = _setup(client, services)
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    # His identity still names the deleted Patient: a document sent for him by INS must not be
    # filed in a record that no longer exists, answered 201 as if it were in his record.
    sent = client.post("/fhir/Observation", json=_by_ins())
    assert sent.status_code == 202, sent.text
    assert "held for identity vigilance" in sent.json()["issue"][0]["diagnostics"]
    # Named by his traits in a contained Patient, the same.
    assert client.post("/fhir/Observation", json=_with_contained(JEAN)).status_code == 202
    assert client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"] == 0
    with services.engine.connect() as conn:
        assert len(conn.execute(select(quarantine)).all()) == 2


def test_a_held_deposit_is_never_released_into_a_deleted_patients_record(
    client: TestClient, services: Services
) -> None:
    """When unsure, quarantine: a document for an identity whose Patient was deleted is held, but
    its vigilance item names that identity as the candidate, and the officer's merge of the item
    filed the document under the deleted Patient all the same, a record no one reads."""
    pid = _setup(client, services)
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.post("/fhir/Observation", json=_with_contained(JEAN)).status_code == 202
    [item] = [i for i in services.identity.vigilance.queue() if i["kind"] == "duplicate"]
    with pytest.raises(VigilanceError, match="deleted"):
        services.identity.vigilance.merge_item(item["id"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    assert client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"] == 0
    with services.engine.connect() as conn:
        assert conn.execute(select(quarantine.c.released_at)).scalar_one() is None
        held_by = select(identity.c.state).where(identity.c.id == item["identity"])
        assert conn.execute(held_by).scalar_one() == "pending"  # not merged
    assert [i["id"] for i in services.identity.vigilance.queue()] == [item["id"]]  # still open


def test_unknown_or_ambiguous_is_held_and_invisible(client: TestClient, services: Services) -> None:
    pid = _setup(client, services)
    unknown = client.post("/fhir/Observation", json=_by_ins(OTHER_NIR))
    assert unknown.status_code == 202, unknown.text
    outcome = unknown.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["severity"] == "information"
    assert "held for identity vigilance (unknown INS)" in issue["diagnostics"]
    # A twin brother in a contained Patient: everything but the first name agrees.
    twin = client.post(
        "/fhir/Observation", json=_with_contained(replace(JEAN, given_names=("PIERRE",)))
    )
    assert twin.status_code == 202, twin.text
    assert "quarantine" in twin.json()["issue"][0]["diagnostics"]
    assert _record_size(client, pid) == 0
    everything = client.get("/fhir/Observation", params={"_summary": "count"})
    assert everything.json()["total"] == 0  # in no record at all
    queue = {i["kind"]: i for i in services.identity.vigilance.queue()}
    assert set(queue) == {"unknown", "duplicate"}
    assert len(queue["duplicate"]["quarantined"]) == 1
    # The same unknown INS again: held with the first one, under the same item.
    again = client.post("/fhir/Observation", json=_by_ins(OTHER_NIR))
    assert again.status_code == 202
    assert "INS already waiting for vigilance" in again.json()["issue"][0]["diagnostics"]
    queue = {i["kind"]: i for i in services.identity.vigilance.queue()}
    assert len(queue) == 2
    assert len(queue["unknown"]["quarantined"]) == 2
    # An identity that holds only an INS has nothing to block or score on: batch runs pass it by.
    assert services.identity.batch.train(random_pairs=200).records == 3
    assert all(
        queue["unknown"]["identity"] not in (p.a, p.b) for p in services.identity.batch.dedupe()
    )
    # The officer decides the unknown INS is Jean's: the held document joins his record.
    with services.engine.connect() as conn:
        jean = conn.execute(select(identity.c.id).where(identity.c.patient_id == pid)).scalar_one()
    done = services.identity.vigilance.merge(
        queue["unknown"]["identity"], jean, actor="officer", ctx=AS_LOCAL_OPERATOR
    )
    assert done["released"] == 2
    assert _record_size(client, pid) == 2


def test_other_identifiers(client: TestClient, services: Services) -> None:
    system = "https://hopital.example/ipp"
    patient = {**_patient(), "identifier": [{"system": system, "value": "IPP-7"}]}
    created = client.post("/fhir/Patient", json=patient)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    body = observation("x")
    body["subject"] = {"identifier": {"system": system, "value": "IPP-7"}}
    known = client.post("/fhir/Observation", json=body)
    assert known.status_code == 201, known.text
    assert known.json()["subject"] == {"reference": f"Patient/{pid}"}
    # A Patient held elsewhere (no one here has that identifier): a logical reference, as sent.
    body["subject"] = {"identifier": {"system": system, "value": "IPP-8"}}
    elsewhere = client.post("/fhir/Observation", json=body)
    assert elsewhere.status_code == 201, elsewhere.text
    assert elsewhere.json()["subject"] == body["subject"]
    assert services.identity.vigilance.queue() == []


def test_transaction_entry_is_held(client: TestClient, services: Services) -> None:
    _setup(client, services)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Observation"}, "resource": _by_ins()},
            {"request": {"method": "POST", "url": "Observation"}, "resource": _by_ins(OTHER_NIR)},
        ],
    }
    done = client.post("/fhir", json=bundle)
    assert done.status_code == 200, done.text
    statuses = [e["response"]["status"] for e in done.json()["entry"]]
    assert statuses[0].startswith("201")
    assert statuses[1] == "202 Accepted"
    assert done.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


def test_bad_identity_in_a_deposit(client: TestClient, services: Services) -> None:
    _setup(client, services)
    bad_nir = client.post("/fhir/Observation", json=_by_ins("1850775056012"))
    assert bad_nir.status_code == 422, bad_nir.text
    # A contained subject without strict traits (an unnamed newborn): nothing to match, stored as
    # sent, in no record.
    no_traits = observation("x")
    no_traits["contained"] = [{"resourceType": "Patient", "id": "p", "gender": "male"}]
    no_traits["subject"] = {"reference": "#p"}
    kept = client.post("/fhir/Observation", json=no_traits)
    assert kept.status_code == 201, kept.text
    assert kept.json()["subject"] == {"reference": "#p"}
    # A qualified INS whose traits the register contradicts: refused, nothing written.
    liar = _with_contained(replace(JEAN, birth_place="13055"))
    liar["contained"][0] = apply_to_patient(
        {"resourceType": "Patient", "id": "p"},
        replace(JEAN, birth_place="13055"),
        InsStatus.QUAL,
        Ins(INS_NIR_OID, NIR),
    )
    conflicted = client.post("/fhir/Observation", json=liar)
    assert conflicted.status_code == 409, conflicted.text
    assert services.identity.vigilance.queue() == []


def test_deposit_answer_does_not_reveal_the_patient_id(
    client: TestClient, services: Services
) -> None:
    ipp = {"system": "urn:oid:1.2.250.1.71.4.2.7", "value": "IPP-4242"}
    patient = _patient()
    patient["identifier"] = [*patient["identifier"], ipp]
    register = InMemoryRegister()
    register.add(Ins(INS_NIR_OID, NIR), JEAN)
    services.identity.register = register
    created = client.post("/fhir/Patient", json=patient)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    # A professional without care for this patient: they may deposit, not learn the Patient id.
    stranger = Principal(Kind.PROFESSIONAL, "pro-9", rpps="10000000009", profession="physician")
    app = create_app(services.settings, services)
    with TestClient(app, base_url="http://127.0.0.1", headers=bearer(services, stranger)) as pro:
        assert pro.get(f"/fhir/Patient/{pid}").status_code == 403
        by_ipp = observation("x")
        by_ipp["subject"] = {"identifier": ipp}
        for sent in (_by_ins(), _with_contained(JEAN), by_ipp):
            answer = pro.post("/fhir/Observation", json=sent)
            assert answer.status_code == 201, answer.text
            assert answer.json()["subject"] == sent["subject"]
            assert pid not in answer.text
            assert not [k for k, v in answer.headers.items() if pid in v], answer.headers
            # the same in a transaction Bundle's answer
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "POST", "url": "Observation"}, "resource": sent}],
            }
            done = pro.post("/fhir", json=bundle)
            assert done.status_code == 200, done.text
            assert pid not in done.text
    # An identifier other than an INS resolves no Patient the caller may not read: an IPP deposit
    # answers exactly as one naming no known patient.
    by_unknown_ipp = observation("x")
    by_unknown_ipp["subject"] = {"identifier": {**ipp, "value": "IPP-0000"}}
    with TestClient(app, base_url="http://127.0.0.1", headers=bearer(services, stranger)) as pro:
        known, unknown = (pro.post("/fhir/Observation", json=b) for b in (by_ipp, by_unknown_ipp))
        assert (known.status_code, unknown.status_code) == (201, 201)
        assert known.json()["subject"] == by_ipp["subject"]
    # care (the operator here) gets the Patient reference as before
    seen = client.post("/fhir/Observation", json=by_ipp)
    assert seen.json()["subject"] == {"reference": f"Patient/{pid}"}


def test_a_reference_to_another_servers_patient_attaches_nothing_here(
    client: TestClient, services: Services
) -> None:
    """An Observation whose subject is another server's Patient (an absolute URL that is not this
    server's base) was put in the record of the local Patient with the same id: the patient and
    their carers read another person's result as theirs."""
    pid = str(client.post("/fhir/Patient", json=patient()).json()["id"])
    ids = {}
    for name, base in (
        ("elsewhere", "https://other-hospital.example/fhir"),
        ("here", services.settings.fhir_base_url),  # our own base: a local reference
    ):
        body = observation(pid)
        body["subject"] = {"reference": f"{base}/Patient/{pid}"}
        created = client.post("/fhir/Observation", json=body)
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
    person = Principal(Kind.PERSON, "acct-p", patient_id=pid)
    app = create_app(services.settings, services)
    with TestClient(app, base_url="http://127.0.0.1", headers=bearer(services, person)) as me:
        assert me.get(f"/fhir/Observation/{ids['here']}").status_code == 200
        assert me.get(f"/fhir/Observation/{ids['elsewhere']}").status_code == 403  # not theirs
        record = me.get(f"/fhir/Patient/{pid}/$everything").json()
        found = {e["resource"]["id"] for e in record["entry"]}
        assert ids["here"] in found and ids["elsewhere"] not in found


def test_an_item_for_a_patient_that_does_not_exist_waits_for_no_one(client: TestClient) -> None:
    """``Patient/ghost`` names no Patient: stored, the item would sit in a record no one has
    and join whichever Patient later gets that id (a PUT by id, another source's file). As HAPI
    FHIR enforces referential integrity on write, it is refused (400, located at the reference)
    and nothing is stored; in a transaction the Patient may come in the same Bundle."""
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    refused = client.post(
        "/fhir/Observation", json=observation(ghost, subject={"reference": f"Patient/{ghost}"})
    )
    assert refused.status_code == 400, refused.text
    issue = refused.json()["issue"][0]
    assert issue["code"] == "not-found" and issue["expression"] == ["Observation.subject"]
    late = {**patient(), "id": ghost}
    assert client.put(f"/fhir/Patient/{ghost}", json=late).status_code == 201
    record = client.get(f"/fhir/Patient/{ghost}/$everything").json()
    assert [e["resource"]["resourceType"] for e in record["entry"]] == ["Patient"]

    both = f"both-{uuid.uuid4().hex[:8]}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": observation(both, subject={"reference": f"Patient/{both}"}),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {**patient(given="Claire"), "id": both},
                "request": {"method": "PUT", "url": f"Patient/{both}"},
            },
        ],
    }
    assert client.post("/fhir", json=bundle).status_code == 200
    record = client.get(f"/fhir/Patient/{both}/$everything").json()
    assert sorted(e["resource"]["resourceType"] for e in record["entry"]) == [
        "Observation",
        "Patient",
    ]


def test_a_document_for_an_ins_two_identities_carry_is_held_however_it_names_its_patient(
    client: TestClient, services: Services
) -> None:
    _setup(client, services)
    # A second Patient for Jean (another source's copy): stored, and left to the officer.
    duplicate = client.post("/fhir/Patient", json=_patient())
    assert duplicate.status_code == 201, duplicate.text
    assert [i["evidence"]["reason"] for i in services.identity.vigilance.queue()] == [
        "another Patient has this identity"
    ]
    # Until the officer merges them, which of the two records a document joins is not for the
    # index to pick: named by the INS alone it is held, and named by a contained Patient too.
    assert client.post("/fhir/Observation", json=_by_ins()).status_code == 202
    contained = _with_contained(JEAN)
    contained["contained"][0]["identifier"] = [{"system": INS_NIR_OID, "value": NIR}]
    held = client.post("/fhir/Observation", json=contained)
    assert held.status_code == 202, held.text
    assert client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"] == 0
