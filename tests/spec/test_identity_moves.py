"""Merges move references on SQLite and PostgreSQL: the duplicate Patient's resources are re-pointed
to the surviving Patient in the merge's transaction, and an unmerge moves exactly those back."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import select

from carnet.app import Services
from carnet.identity.ins import Traits
from carnet.identity.models import identity, identity_merge
from carnet.identity.moves import repoint
from carnet.identity.service import IdentityInput, Outcome, VigilanceError
from tests.spec.helpers import observation
from tests.support.caller import AS_LOCAL_OPERATOR

BASE = "http://127.0.0.1/fhir"
JEAN = Traits.create("Dupont", ["Jean", "Paul"], "1985-07-04", "M", "75056")


def _patient(services: Services) -> str:
    body = {"resourceType": "Patient", "name": [{"family": "X"}], "gender": "male"}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _ids(services: Services, pid: str) -> set[str]:
    found = services.fhir.search(
        BASE, "Observation", [("subject", f"Patient/{pid}")], ctx=AS_LOCAL_OPERATOR
    )
    return {e["resource"]["id"] for e in found.get("entry", [])}


def test_repoint_only_touches_references_to_that_patient() -> None:
    body = {
        "subject": {"reference": "Patient/a"},
        "performer": [
            {"reference": "Practitioner/a"},
            {"reference": "http://x/fhir/Patient/a"},
            {"reference": "http://other.example/fhir/Patient/a"},
        ],
        "note": [{"text": "Patient/a"}],
        "focus": [{"reference": "Patient/ab"}],
    }
    moved = repoint(body, "a", "b", local_base="http://x/fhir")
    assert moved["subject"] == {"reference": "Patient/b"}
    # Ours (under our own base) is re-pointed; another server's Patient a is someone else, left
    # exactly as written: only our references place an item in a record (0abd343's rule).
    assert moved["performer"] == [
        {"reference": "Practitioner/a"},
        {"reference": "http://x/fhir/Patient/b"},
        {"reference": "http://other.example/fhir/Patient/a"},
    ]
    assert moved["note"] == [{"text": "Patient/a"}]
    assert moved["focus"] == [{"reference": "Patient/ab"}]
    assert body["subject"] == {"reference": "Patient/a"}  # a copy
    assert repoint(body, "zz", "b", local_base="http://x/fhir") is body


def test_merge_moves_references_and_unmerge_moves_them_back(services: Services) -> None:
    mpi = services.identity
    a, b = _patient(services), _patient(services)
    first = mpi.resolve(IdentityInput(JEAN, patient_id=a), ctx=AS_LOCAL_OPERATOR)
    dup = mpi.resolve(
        IdentityInput(replace(JEAN, birth_place=None, given_names=("JAEN",)), patient_id=b),
        ctx=AS_LOCAL_OPERATOR,
    )
    assert dup.outcome is Outcome.REVIEW
    assert first.identity_id is not None and dup.identity_id is not None
    fhir = services.fhir
    own = fhir.create("Observation", observation(a), ctx=AS_LOCAL_OPERATOR).stored.res_id
    theirs = {
        fhir.create("Observation", observation(b), ctx=AS_LOCAL_OPERATOR).stored.res_id
        for _ in range(2)
    }
    done = mpi.vigilance.merge(
        dup.identity_id, first.identity_id, actor="officer", ctx=AS_LOCAL_OPERATOR
    )
    assert done["moved"] == 2
    assert _ids(services, a) == {own, *theirs}
    assert _ids(services, b) == set()
    moved = fhir.read("Observation", next(iter(theirs)), ctx=AS_LOCAL_OPERATOR)
    assert moved.version == 2
    assert moved.patient_id == a
    assert moved.body is not None and moved.body["subject"] == {"reference": f"Patient/{a}"}
    with services.engine.connect() as conn:
        record = json.loads(conn.execute(select(identity_merge.c.moved)).scalar_one())
    assert sorted(record["moved"]) == sorted(f"Observation/{i}" for i in theirs)
    # Written after the merge: stays with the surviving Patient on unmerge.
    later = fhir.create("Observation", observation(a), ctx=AS_LOCAL_OPERATOR).stored.res_id
    mpi.vigilance.unmerge(done["merge"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    assert _ids(services, b) == theirs
    assert _ids(services, a) == {own, later}
    back = fhir.read("Observation", next(iter(theirs)), ctx=AS_LOCAL_OPERATOR)
    assert back.version == 3
    assert back.patient_id == b


def test_an_unmerge_whose_target_was_merged_since_is_refused_and_changes_nothing(
    services: Services,
) -> None:
    mpi = services.identity
    a, b, c = _patient(services), _patient(services), _patient(services)
    ids = [
        mpi.resolve(IdentityInput(traits, patient_id=pid), ctx=AS_LOCAL_OPERATOR).identity_id
        for traits, pid in (
            (JEAN, a),
            (replace(JEAN, birth_place=None, given_names=("JAEN",)), b),
            (Traits.create("Morin", ["Luc"], "1950-01-02", "M", "13055"), c),
        )
    ]
    first, dup, third = ids
    assert first and dup and third
    theirs = services.fhir.create("Observation", observation(b), ctx=AS_LOCAL_OPERATOR)
    earlier = mpi.vigilance.merge(dup, first, actor="officer", ctx=AS_LOCAL_OPERATOR)
    mpi.vigilance.merge(first, third, actor="officer", ctx=AS_LOCAL_OPERATOR)
    assert _ids(services, c) == {theirs.stored.res_id}
    # Undoing the earlier merge alone would make b's identity active again with an empty record
    # while its items stay in c's: the later merge has to be undone first.
    with pytest.raises(VigilanceError, match="merged"):
        mpi.vigilance.unmerge(earlier["merge"], actor="officer", ctx=AS_LOCAL_OPERATOR)
    assert _ids(services, c) == {theirs.stored.res_id}
    assert _ids(services, b) == set()
    with services.engine.connect() as conn:
        states = dict(conn.execute(select(identity.c.id, identity.c.state)).all())
    assert states[dup] == "merged" and states[first] == "merged"


def test_a_merge_re_points_only_our_references_never_another_servers(
    services: Services,
) -> None:
    # Only relative references and absolute ones under our own base are ours (0abd343): the same
    # id on another server names someone else, whom a merge here has no business renaming.
    mpi = services.identity
    a, b = _patient(services), _patient(services)
    first = mpi.resolve(IdentityInput(JEAN, patient_id=a), ctx=AS_LOCAL_OPERATOR)
    dup = mpi.resolve(
        IdentityInput(replace(JEAN, birth_place=None, given_names=("JAEN",)), patient_id=b),
        ctx=AS_LOCAL_OPERATOR,
    )
    assert first.identity_id is not None and dup.identity_id is not None
    ours = services.settings.fhir_base_url
    theirs = f"https://other-hospital.example/fhir/Patient/{b}"
    body = {
        **observation(b),
        "focus": [{"reference": theirs}],
        "performer": [{"reference": f"{ours}/Patient/{b}"}],
    }
    item = services.fhir.create("Observation", body, ctx=AS_LOCAL_OPERATOR).stored.res_id
    mpi.vigilance.merge(dup.identity_id, first.identity_id, actor="officer", ctx=AS_LOCAL_OPERATOR)
    moved = services.fhir.read("Observation", item, ctx=AS_LOCAL_OPERATOR).body
    assert moved is not None
    assert moved["subject"] == {"reference": f"Patient/{a}"}
    assert moved["performer"] == [{"reference": f"{ours}/Patient/{a}"}]
    assert moved["focus"] == [{"reference": theirs}]


def test_a_merge_leaves_no_open_item_that_would_bring_its_source_back(services: Services) -> None:
    # The officer merges the duplicate directly (not through its item): its item stayed open,
    # and dismissing it later made the merged identity "active" again while still merged into
    # the other, its Patient still replaced-by hers: one person, two live identities.
    mpi = services.identity
    a, b = _patient(services), _patient(services)
    first = mpi.resolve(IdentityInput(JEAN, patient_id=a), ctx=AS_LOCAL_OPERATOR)
    dup = mpi.resolve(
        IdentityInput(replace(JEAN, birth_place=None, given_names=("JAEN",)), patient_id=b),
        ctx=AS_LOCAL_OPERATOR,
    )
    assert dup.item_id is not None and dup.identity_id and first.identity_id
    mpi.vigilance.merge(dup.identity_id, first.identity_id, actor="officer", ctx=AS_LOCAL_OPERATOR)
    assert [i["id"] for i in mpi.vigilance.queue()] == []
    with pytest.raises(VigilanceError):
        mpi.vigilance.dismiss(dup.item_id, actor="officer", ctx=AS_LOCAL_OPERATOR)
    with services.engine.connect() as conn:
        state = select(identity.c.state).where(identity.c.id == dup.identity_id)
        assert conn.execute(state).scalar_one() == "merged"
