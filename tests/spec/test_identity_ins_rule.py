"""Two valid INS that differ are two people, whatever the traits (issue 12, section 1): true
homonyms and twins with their own INS are never linked, a record without an INS that fits two of
them goes to the vigilance queue, and the register's word that an NIA was replaced by a NIR is the
one exception. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services
from carnet.identity.ins import (
    INS_NIA_OID,
    INS_NIR_OID,
    Ins,
    InsStatus,
    Traits,
    apply_to_patient,
)
from carnet.identity.nir import make_nir
from carnet.identity.register import InMemoryRegister
from carnet.identity.service import IdentityInput, Outcome, VigilanceError
from tests.spec.helpers import observation
from tests.support.caller import AS_LOCAL_OPERATOR

HOMONYM = Traits.create("Martin", ["Marie", "Anne"], "1980-05-12", "F", "75056")
NIR_A = Ins(INS_NIR_OID, make_nir(2, 1980, 5, "75056", 101))
NIR_B = Ins(INS_NIR_OID, make_nir(2, 1980, 5, "75056", 102))  # differs only by order number
NIR_C = Ins(INS_NIR_OID, make_nir(2, 1980, 5, "75056", 103))


def test_two_valid_ins_that_differ_are_never_linked(services: Services) -> None:
    mpi = services.identity
    first = mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A), ctx=AS_LOCAL_OPERATOR)
    # A true homonym: the very same strict traits, her own INS. Another person, not a duplicate.
    second = mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, NIR_B), ctx=AS_LOCAL_OPERATOR)
    assert second.outcome is Outcome.NEW
    assert second.identity_id != first.identity_id
    assert mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A)).identity_id == (
        first.identity_id
    )
    assert mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_B)).identity_id == (
        second.identity_id
    )


def test_twins_with_the_same_first_name_and_their_own_nir_are_two_people(
    services: Services,
) -> None:
    mpi = services.identity
    twin = replace(HOMONYM, given_names=("MARIE",))
    mpi.resolve(IdentityInput(twin, InsStatus.VALI, NIR_A), ctx=AS_LOCAL_OPERATOR)
    other = mpi.match(IdentityInput(twin, InsStatus.VALI, NIR_B))
    assert other.outcome is not Outcome.LINK


def test_twins_whose_first_names_partly_overlap_and_nirs_differ_by_order_are_not_linked(
    services: Services,
) -> None:
    mpi = services.identity
    mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A), ctx=AS_LOCAL_OPERATOR)
    sister = replace(HOMONYM, given_names=("MARIE", "LOUISE"))
    assert mpi.match(IdentityInput(sister, InsStatus.VALI, NIR_B)).outcome is not Outcome.LINK
    # Without any INS, complete first-name lists that disagree after the first are a doubt.
    assert mpi.match(IdentityInput(sister)).outcome is Outcome.REVIEW


def test_identical_traits_without_ins_go_to_review_when_homonyms_are_indexed(
    services: Services,
) -> None:
    mpi = services.identity
    mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A), ctx=AS_LOCAL_OPERATOR)
    mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, NIR_B), ctx=AS_LOCAL_OPERATOR)
    # No INS on the incoming side: it fits both women.
    assert mpi.match(IdentityInput(HOMONYM)).outcome is Outcome.REVIEW


def test_a_record_without_ins_is_not_linked_to_when_a_homonym_has_an_ins(
    services: Services,
) -> None:
    mpi = services.identity
    # Two women known to be distinct (an existing index): one without an INS, one with.
    mpi.batch.add_many([IdentityInput(HOMONYM), IdentityInput(HOMONYM, InsStatus.VALI, NIR_B)])
    # A third INS: not NIR_B's woman; the identity without an INS may or may not be her.
    found = mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_C))
    assert found.outcome is Outcome.REVIEW


def test_an_nia_the_register_says_a_nir_replaced_is_the_same_person(services: Services) -> None:
    nia = Ins(INS_NIA_OID, make_nir(8, 1980, 5, "99134", 7))
    register = InMemoryRegister()
    register.add(nia, HOMONYM)
    register.add(NIR_A, HOMONYM)
    mpi = services.identity
    mpi.register = register
    before = mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, nia), ctx=AS_LOCAL_OPERATOR)
    assert mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A)).outcome is Outcome.NEW
    register.replace_nia(nia, NIR_A)
    after = mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A))
    assert after.outcome is Outcome.LINK
    assert after.identity_id == before.identity_id


def test_batch_dedupe_never_lists_two_people_with_different_ins(services: Services) -> None:
    mpi = services.identity
    mpi.batch.add_many(
        [
            IdentityInput(HOMONYM, InsStatus.VALI, NIR_A),
            IdentityInput(HOMONYM, InsStatus.VALI, NIR_B),
            IdentityInput(Traits.create("Morin", ["Luc"], "1950-01-02", "M", "13055")),
        ]
    )
    assert mpi.batch.dedupe() == []
    # A copy without an INS fits both: left to review, never a link.
    mpi.batch.add_many([IdentityInput(HOMONYM)])
    pairs = mpi.batch.dedupe()
    assert len(pairs) == 2
    assert {p.outcome for p in pairs} == {"review"}


def test_an_identity_linked_with_an_ins_keeps_it_so_another_ins_is_another_person(
    services: Services,
) -> None:
    mpi = services.identity
    first = mpi.resolve(IdentityInput(HOMONYM), ctx=AS_LOCAL_OPERATOR)  # known first without an INS
    linked = mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A), ctx=AS_LOCAL_OPERATOR)
    assert linked.outcome is Outcome.LINK
    assert linked.identity_id == first.identity_id
    # The identity is now NIR_A's woman: a homonym with her own NIR is someone else.
    assert mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_B)).outcome is Outcome.NEW
    assert mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_A)).reason == (
        "known INS, traits agree"
    )


def test_a_patient_updated_with_an_ins_gives_it_to_its_identity(
    client: TestClient, services: Services
) -> None:
    body = apply_to_patient({"resourceType": "Patient"}, HOMONYM, InsStatus.PROV, None)
    created = client.post("/fhir/Patient", json=body)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    with_ins = apply_to_patient(
        {"resourceType": "Patient", "id": pid}, HOMONYM, InsStatus.VALI, NIR_A, outgoing=False
    )
    updated = client.put(f"/fhir/Patient/{pid}", json=with_ins)
    assert updated.status_code == 200, updated.text
    other = services.identity.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_B))
    assert other.outcome is Outcome.NEW


def _carrying(traits: Traits, *inses: Ins) -> dict[str, Any]:
    body = apply_to_patient({"resourceType": "Patient"}, traits, InsStatus.VALI, None)
    body["identifier"] = [{"system": i.system, "value": i.value} for i in inses]
    return body


def test_a_patient_carrying_two_ins_that_name_two_people_is_refused(
    client: TestClient, services: Services
) -> None:
    # Her Patient carrying a second woman's INS first would give that INS to her identity, and
    # every later document for the other woman, deposited by INS, would land in her record.
    refused = client.post("/fhir/Patient", json=_carrying(HOMONYM, NIR_B, NIR_A))
    assert refused.status_code == 422, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert NIR_A.value not in refused.text and NIR_B.value not in refused.text
    assert services.identity.count() == 0
    created = client.post("/fhir/Patient", json=_carrying(HOMONYM, NIR_A))
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    update = {**_carrying(HOMONYM, NIR_A, NIR_B), "id": pid}
    assert client.put(f"/fhir/Patient/{pid}", json=update).status_code == 422
    found = client.get("/fhir/Patient", params={"identifier": f"{NIR_B.system}|{NIR_B.value}"})
    assert found.json()["total"] == 0
    # A document whose contained Patient carries both is refused too, and stored nowhere.
    document = observation("x")
    document["contained"] = [{**_carrying(HOMONYM, NIR_B, NIR_A), "id": "p"}]
    document["subject"] = {"reference": "#p"}
    assert client.post("/fhir/Observation", json=document).status_code == 422
    assert client.get("/fhir/Observation").json()["total"] == 0


def test_a_patient_carrying_an_nia_and_the_nir_that_replaced_it_is_one_person(
    client: TestClient, services: Services
) -> None:
    nia = Ins(INS_NIA_OID, make_nir(8, 1980, 5, "99134", 7))
    register = InMemoryRegister()
    register.add(nia, HOMONYM)
    register.add(NIR_A, HOMONYM)
    register.replace_nia(nia, NIR_A)
    services.identity.register = register
    created = client.post("/fhir/Patient", json=_carrying(HOMONYM, nia, NIR_A))
    assert created.status_code == 201, created.text


def test_a_merge_never_joins_two_people_with_different_ins(services: Services) -> None:
    mpi = services.identity
    mpi.batch.add_many([IdentityInput(HOMONYM), IdentityInput(HOMONYM, InsStatus.VALI, NIR_B)])
    # NIR_C's woman fits both: her item's best candidate may well be NIR_B's woman, whom the
    # officer must never be able to merge her into.
    held = mpi.resolve(IdentityInput(HOMONYM, InsStatus.VALI, NIR_C), ctx=AS_LOCAL_OPERATOR)
    assert held.outcome is Outcome.REVIEW and held.identity_id is not None
    with_b = mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_B)).identity_id
    assert with_b is not None
    with pytest.raises(VigilanceError, match="two people"):
        mpi.vigilance.merge(held.identity_id, with_b, actor="officer", ctx=AS_LOCAL_OPERATOR)
    with pytest.raises(VigilanceError, match="two people"):
        mpi.vigilance.merge(with_b, held.identity_id, actor="officer", ctx=AS_LOCAL_OPERATOR)
    # Nothing changed: both are still themselves, and the item is still open for a human.
    assert mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_B)).identity_id == with_b
    assert mpi.match(IdentityInput(HOMONYM, InsStatus.VALI, NIR_C)).identity_id == (
        held.identity_id
    )
    assert [i["id"] for i in mpi.vigilance.queue("open")] == [held.item_id]


def test_an_ins_another_identity_holds_is_never_given_to_a_second_one(
    client: TestClient, services: Services
) -> None:
    mpi = services.identity
    # Two homonyms: the first known without an INS, the second with NIR_B; the officer found
    # them to be two people.
    first = client.post("/fhir/Patient", json=_carrying(HOMONYM))
    second = client.post("/fhir/Patient", json=_carrying(HOMONYM, NIR_B))
    assert first.status_code == 201 and second.status_code == 201
    (item,) = mpi.vigilance.queue("open")
    mpi.vigilance.dismiss(item["id"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    # The second woman's NIR picked for the first at a desk: refused, not adopted, or her
    # identity and the second's would both carry NIR_B and a document could go to either.
    pid = first.json()["id"]
    update = {**_carrying(HOMONYM, NIR_B), "id": pid}
    refused = client.put(f"/fhir/Patient/{pid}", json=update)
    assert refused.status_code == 409, refused.text
    assert NIR_B.value not in refused.text
    document = observation("x")
    document["contained"] = [{**_carrying(HOMONYM, NIR_B), "id": "p"}]
    document["subject"] = {"reference": "#p"}
    for _ in range(3):
        sent = client.post("/fhir/Observation", json=document)
        assert sent.status_code == 201, sent.text
        assert sent.json()["subject"] == {"reference": f"Patient/{second.json()['id']}"}


def test_an_ins_only_waiting_for_vigilance_is_still_given_to_the_patient_it_belongs_to(
    client: TestClient, services: Services
) -> None:
    created = client.post("/fhir/Patient", json=_carrying(HOMONYM))
    assert created.status_code == 201, created.text
    # A document for NIR_A arrived before anyone knew whose it is: held under an identity that
    # holds only that INS (no person, no traits), for the officer.
    document = observation("x")
    document["subject"] = {"identifier": {"system": NIR_A.system, "value": NIR_A.value}}
    assert client.post("/fhir/Observation", json=document).status_code == 202
    # The desk then records her INS on her Patient: that is no other person's INS.
    pid = created.json()["id"]
    update = {**_carrying(HOMONYM, NIR_A), "id": pid}
    assert client.put(f"/fhir/Patient/{pid}", json=update).status_code == 200, pid
