"""Which types SMART v2 granular scopes cover only in part, and with which queries."""

from __future__ import annotations

from carnet.caller import Authorship, Kind, Principal
from carnet.policy.authors import authorship_of
from carnet.policy.scopes import allowed_types, granular_queries, parse_scopes

LAB = "patient/Observation.rs?category=laboratory"
VITALS = "patient/Observation.rs?category=vital-signs"


def test_granular_scope_covers_its_type_only_through_its_query() -> None:
    scopes = parse_scopes(frozenset({LAB, "patient/Patient.rs"}))
    assert allowed_types(scopes, "patient", "s") == frozenset({"Observation", "Patient"})
    assert granular_queries(scopes, "patient", "s") == {"Observation": ("category=laboratory",)}
    assert granular_queries(scopes, "patient", "c") == {}  # no create at all: not granted


def test_granular_scopes_on_one_type_add_up() -> None:
    scopes = parse_scopes(frozenset({LAB, VITALS}))
    assert granular_queries(scopes, "patient", "r") == {
        "Observation": ("category=laboratory", "category=vital-signs")
    }


def test_a_scope_without_query_covers_the_whole_type() -> None:
    for whole in ("patient/Observation.rs", "patient/*.rs"):
        scopes = parse_scopes(frozenset({LAB, whole}))
        assert granular_queries(scopes, "patient", "r") == {}


def test_a_granular_scope_binds_its_context_and_permissions_only() -> None:
    scopes = parse_scopes(frozenset({LAB}))
    assert granular_queries(scopes, "user", "r") == {}
    assert granular_queries(scopes, "patient", "u") == {}


def test_a_wildcard_type_with_a_query_grants_nothing() -> None:
    scopes = parse_scopes(frozenset({"patient/*.rs?category=laboratory"}))
    assert scopes == []
    assert allowed_types(scopes, "patient", "r") == frozenset()


def test_authorship_comes_from_the_caller() -> None:
    pro = Principal(Kind.PROFESSIONAL, "pro-1", rpps="10000000001", profession="nurse")
    person = Principal(Kind.PERSON, "acct-1", patient_id="p1")
    app = Principal(Kind.APP, "acct-1", patient_id="p1", client_id="diary")
    assert authorship_of(pro) == Authorship("professional", "10000000001")
    assert authorship_of(person) == Authorship("person", "acct-1")
    assert authorship_of(app) == Authorship("app", "diary")
    assert authorship_of(Principal(Kind.BACKEND, "lab", client_id="lab")) is None
    assert not Authorship("professional", "10000000001").patient_side
    assert Authorship("person", "acct-1").patient_side and Authorship("app", "diary").patient_side
