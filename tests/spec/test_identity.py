"""The master patient index on SQLite and PostgreSQL: link / review / new, quarantine, merge,
unmerge and dismiss, the INS paths, and no identifying value in clear."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services
from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits
from carnet.identity.models import identity, identity_block, quarantine
from carnet.identity.nir import make_nir
from carnet.identity.register import InMemoryRegister
from carnet.identity.service import IdentityConflict, IdentityInput, Outcome, VigilanceError
from tests.spec.helpers import observation
from tests.support.caller import AS_LOCAL_OPERATOR

BASE = "http://127.0.0.1/fhir"
JEAN = Traits.create("Dupont", ["Jean", "Paul"], "1985-07-04", "M", "75056")
NIR = make_nir(1, 1985, 7, "75056", 12)


def _patient(services: Services) -> str:
    body = {"resourceType": "Patient", "name": [{"family": "X"}], "gender": "male"}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _doc(pid: str = "unknown") -> dict[str, Any]:
    body = observation(pid)
    return body


def _count(services: Services, params: list[tuple[str, str]]) -> int:
    found = services.fhir.search(
        BASE, "Observation", [*params, ("_summary", "count")], ctx=AS_LOCAL_OPERATOR
    )
    return int(found["total"])


def test_link_review_new(services: Services) -> None:
    mpi = services.identity
    first = mpi.resolve(IdentityInput(JEAN), ctx=AS_LOCAL_OPERATOR)
    assert first.outcome is Outcome.NEW
    again = mpi.resolve(IdentityInput(replace(JEAN, given_names=("JEAN",))), ctx=AS_LOCAL_OPERATOR)
    assert again.outcome is Outcome.LINK
    assert again.identity_id == first.identity_id
    assert {c["comparison"]: c["level"] for c in again.as_dict()["candidates"][0]["comparisons"]}[
        "given_names"
    ] == "exact"
    typo = mpi.resolve(IdentityInput(replace(JEAN, birth_name="DUPONTT")), ctx=AS_LOCAL_OPERATOR)
    assert typo.outcome is Outcome.LINK
    # A twin brother: everything but the first name agrees. Never linked.
    twin = mpi.resolve(IdentityInput(replace(JEAN, given_names=("PIERRE",))), ctx=AS_LOCAL_OPERATOR)
    assert twin.outcome is Outcome.REVIEW
    assert twin.item_id is not None
    assert twin.identity_id != first.identity_id
    stranger = mpi.resolve(
        IdentityInput(Traits.create("Morin", ["Luc"], "1950-01-02", "M", "13055")),
        ctx=AS_LOCAL_OPERATOR,
    )
    assert stranger.outcome is Outcome.NEW
    assert mpi.count() == 3  # Jean, the pending twin, the stranger
    [item] = mpi.vigilance.queue()
    assert item["kind"] == "duplicate"
    assert item["candidate"] == first.identity_id


def test_nothing_in_clear(services: Services) -> None:
    services.identity.resolve(IdentityInput(JEAN, ins=Ins(INS_NIR_OID, NIR)), ctx=AS_LOCAL_OPERATOR)
    with services.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(identity))]
        rows += [tuple(r) for r in conn.execute(select(identity_block))]
    dump = repr(rows).upper()
    for secret in ("DUPONT", "JEAN", "1985-07-04", NIR, "DUPON|"):
        assert secret not in dump


def test_known_ins(services: Services) -> None:
    mpi = services.identity
    ins = Ins(INS_NIR_OID, NIR)
    first = mpi.resolve(IdentityInput(JEAN, InsStatus.VALI, ins), ctx=AS_LOCAL_OPERATOR)
    # A different birth place spelling does not matter when the INS is known and names agree.
    same = mpi.resolve(
        IdentityInput(replace(JEAN, birth_place=None), InsStatus.VALI, ins), ctx=AS_LOCAL_OPERATOR
    )
    assert same.outcome is Outcome.LINK
    assert same.identity_id == first.identity_id
    assert same.reason == "known INS, traits agree"
    other = mpi.resolve(
        IdentityInput(replace(JEAN, given_names=("LUC",)), InsStatus.VALI, ins),
        ctx=AS_LOCAL_OPERATOR,
    )
    assert other.outcome is Outcome.REVIEW
    assert mpi.vigilance.queue()[0]["kind"] == "ins_conflict"


def test_qualified_ins_disagreeing_with_the_register_is_refused(services: Services) -> None:
    register = InMemoryRegister()
    ins = Ins(INS_NIR_OID, NIR)
    register.add(ins, JEAN)
    mpi = services.identity
    mpi.register = register
    assert (
        mpi.resolve(IdentityInput(JEAN, InsStatus.QUAL, ins), ctx=AS_LOCAL_OPERATOR).outcome
        is Outcome.NEW
    )
    wrong = replace(JEAN, given_names=("LUC",))
    with pytest.raises(IdentityConflict, match="does not go with these traits"):
        mpi.resolve(IdentityInput(wrong, InsStatus.QUAL, ins), ctx=AS_LOCAL_OPERATOR)
    assert mpi.count() == 1
    assert mpi.vigilance.queue() == []


def test_quarantine_merge_unmerge(services: Services) -> None:
    mpi = services.identity
    pid = _patient(services)
    mpi.resolve(IdentityInput(JEAN, patient_id=pid), ctx=AS_LOCAL_OPERATOR)
    # A lab result for the same man, well matched: attached to his Patient.
    linked = mpi.deposits.deposit(IdentityInput(JEAN), "Observation", _doc(), ctx=AS_LOCAL_OPERATOR)
    assert linked.outcome is Outcome.LINK
    assert linked.patient_id == pid
    assert _count(services, [("subject", f"Patient/{pid}")]) == 1
    # A result whose identity is doubtful (birth place missing and a first-name typo): quarantined.
    doubtful = IdentityInput(replace(JEAN, birth_place=None, given_names=("JAEN",)))
    held = mpi.deposits.deposit(doubtful, "Observation", _doc(), ctx=AS_LOCAL_OPERATOR)
    assert held.outcome is Outcome.REVIEW
    assert held.quarantine_id is not None
    assert _count(services, []) == 1  # invisible in any record
    [item] = mpi.vigilance.queue()
    assert item["quarantined"] == [held.quarantine_id]
    assert item["evidence"]["candidates"][0]["comparisons"]
    assert item["candidate"] is not None
    done = mpi.vigilance.merge_item(item["id"], actor="vigilance-officer", ctx=AS_LOCAL_OPERATOR)
    assert done["released"] == 1
    assert _count(services, [("subject", f"Patient/{pid}")]) == 2
    assert mpi.vigilance.queue() == []
    assert mpi.vigilance.queue("merged")[0]["id"] == item["id"]
    with pytest.raises(VigilanceError, match="already merged"):
        mpi.vigilance.merge_item(item["id"], actor="x", ctx=AS_LOCAL_OPERATOR)
    mpi.vigilance.unmerge(done["merge"], actor="vigilance-officer", ctx=AS_LOCAL_OPERATOR)
    with pytest.raises(VigilanceError, match="already undone"):
        mpi.vigilance.unmerge(done["merge"], actor="x", ctx=AS_LOCAL_OPERATOR)
    with services.engine.connect() as conn:
        states = {r.id: r.state for r in conn.execute(select(identity))}
        assert states[done["source"]] == "active"
        # The doubtful result's identity has no Patient: unmerged, it is held in quarantine again.
        assert conn.execute(select(quarantine.c.released_to)).scalar_one() is None
    assert _count(services, [("subject", f"Patient/{pid}")]) == 1


def test_merge_links_patients_and_unmerge_removes_the_links(services: Services) -> None:
    mpi = services.identity
    a, b = _patient(services), _patient(services)
    first = mpi.resolve(IdentityInput(JEAN, patient_id=a), ctx=AS_LOCAL_OPERATOR)
    dup = mpi.resolve(
        IdentityInput(replace(JEAN, birth_place=None, given_names=("JAEN",)), patient_id=b),
        ctx=AS_LOCAL_OPERATOR,
    )
    assert dup.outcome is Outcome.REVIEW
    assert first.identity_id is not None
    assert dup.identity_id is not None
    done = mpi.vigilance.merge(
        dup.identity_id, first.identity_id, actor="officer", ctx=AS_LOCAL_OPERATOR
    )
    source = services.fhir.read("Patient", b, ctx=AS_LOCAL_OPERATOR).body
    target = services.fhir.read("Patient", a, ctx=AS_LOCAL_OPERATOR).body
    assert source is not None
    assert target is not None
    assert source["link"] == [{"other": {"reference": f"Patient/{a}"}, "type": "replaced-by"}]
    assert source["active"] is False
    assert target["link"] == [{"other": {"reference": f"Patient/{b}"}, "type": "replaces"}]
    with pytest.raises(VigilanceError, match="already merged"):
        mpi.vigilance.merge(
            dup.identity_id, first.identity_id, actor="officer", ctx=AS_LOCAL_OPERATOR
        )
    mpi.vigilance.unmerge(done["merge"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    source = services.fhir.read("Patient", b, ctx=AS_LOCAL_OPERATOR).body
    target = services.fhir.read("Patient", a, ctx=AS_LOCAL_OPERATOR).body
    assert source is not None
    assert target is not None
    assert "link" not in source
    assert source["active"] is True
    assert "link" not in target


def test_dismiss_releases_to_its_own_patient(services: Services) -> None:
    mpi = services.identity
    mpi.resolve(IdentityInput(JEAN, patient_id=_patient(services)), ctx=AS_LOCAL_OPERATOR)
    twin_pid = _patient(services)
    twin = mpi.resolve(
        IdentityInput(replace(JEAN, given_names=("PIERRE",)), patient_id=twin_pid),
        ctx=AS_LOCAL_OPERATOR,
    )
    assert twin.item_id is not None
    assert mpi.vigilance.dismiss(twin.item_id, actor="officer", ctx=AS_LOCAL_OPERATOR) == 0
    assert mpi.vigilance.queue("dismissed")[0]["id"] == twin.item_id
    with pytest.raises(VigilanceError, match="is not known"):
        mpi.vigilance.dismiss("nope", actor="officer", ctx=AS_LOCAL_OPERATOR)
    # The twin is now a distinct identity: he links to himself from now on.
    again = mpi.resolve(
        IdentityInput(replace(JEAN, given_names=("PIERRE",))), ctx=AS_LOCAL_OPERATOR
    )
    assert again.outcome is Outcome.LINK
    assert again.patient_id == twin_pid


def test_unknown_document_is_quarantined_with_an_unknown_item(services: Services) -> None:
    result = services.identity.deposits.deposit(
        IdentityInput(JEAN), "Observation", _doc(), ctx=AS_LOCAL_OPERATOR
    )
    assert result.outcome is Outcome.NEW
    assert result.quarantine_id is not None
    [item] = services.identity.vigilance.queue()
    assert item["kind"] == "unknown"
    assert item["candidate"] is None
    with pytest.raises(VigilanceError, match="no candidate"):
        services.identity.vigilance.merge_item(item["id"], actor="officer", ctx=AS_LOCAL_OPERATOR)


def test_train_and_dedupe_the_index(services: Services) -> None:
    mpi = services.identity
    people = [
        Traits.create("Morin", ["Luc"], "1950-01-02", "M", "13055"),
        Traits.create("Petit", ["Anne"], "1972-03-09", "F", "69123"),
        JEAN,
        replace(JEAN, given_names=("PIERRE",)),  # twin: review, never a link
    ]
    for traits in people:
        mpi.resolve(IdentityInput(traits), ctx=AS_LOCAL_OPERATOR)
    report = mpi.batch.train(random_pairs=500)
    assert report.records == 4
    assert mpi.model is report.model
    # A second service over the same database reads the trained parameters back.
    fresh = type(mpi)(
        services.fhir,
        services.crypto.data_keys,
        services.crypto.blind,
        engine=services.engine,
        link_threshold=12,
        review_threshold=0,
    )
    assert fresh.model.parameters() == report.model.parameters()
    pairs = mpi.batch.dedupe()
    assert all(p.outcome == "review" for p in pairs)


def test_add_many_loads_distinct_identities(services: Services) -> None:
    mpi = services.identity
    ids = mpi.batch.add_many(
        [IdentityInput(JEAN), IdentityInput(replace(JEAN, given_names=("PIERRE",)))], batch=1
    )
    assert len(set(ids)) == 2
    assert mpi.vigilance.queue() == []
    found = mpi.match(IdentityInput(JEAN))
    assert found.outcome is Outcome.LINK
    assert found.identity_id == ids[0]


def test_twins_sharing_a_second_first_name_are_never_linked(services: Services) -> None:
    mpi = services.identity
    jean = mpi.resolve(
        IdentityInput(replace(JEAN, given_names=("JEAN", "MARIE"))), ctx=AS_LOCAL_OPERATOR
    )
    twin = mpi.resolve(
        IdentityInput(replace(JEAN, given_names=("LOUIS", "MARIE"))), ctx=AS_LOCAL_OPERATOR
    )
    assert twin.outcome is Outcome.REVIEW
    # The same names inverted are Jean's, and Louis is ruled out by his first name.
    swapped = mpi.match(IdentityInput(replace(JEAN, given_names=("MARIE", "JEAN"))))
    assert swapped.outcome is Outcome.LINK
    assert swapped.identity_id == jean.identity_id


def test_a_patient_named_with_letters_outside_the_rniv_set_is_indexed_and_matched(
    client: TestClient, services: Services
) -> None:
    body = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Sørensen", "given": ["Łukasz"]}],
        "gender": "male",
        "birthDate": "1985-07-04",
    }
    created = client.post("/fhir/Patient", json=body)
    assert created.status_code == 201, created.text
    found = services.identity.match(
        IdentityInput(Traits.create("SORENSEN", ["LUKASZ"], "1985-07-04", "M", None))
    )
    assert found.outcome is Outcome.LINK
    assert found.patient_id == created.json()["id"]
