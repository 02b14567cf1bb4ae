"""Finding a patient as a professional (carnet/identity/lookup.py): by INS or by all the strict
traits, never by a name alone; only records the professional may open; a qualified INS shown as
such; one answer for a record that does not exist and one the professional may not open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carnet.app import Services, build_services
from carnet.caller import Kind, Principal, RequestContext
from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits, apply_to_patient
from carnet.identity.lookup import PatientFinder, PatientLookupError
from tests.conftest import make_settings
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate
from tests.unit.record.helpers import CLAIRE, ODILE, PAUL, Person

GP, BLOCKED, STRANGER = "10000000011", "10000000037", "10000000045"


def _pro(name: str, rpps: str) -> RequestContext:
    return RequestContext(
        Principal(Kind.PROFESSIONAL, f"pro-{name}", rpps=rpps, profession="physician"), name
    )


AS_GP, AS_BLOCKED, AS_STRANGER = (
    _pro("gp", GP),
    _pro("blocked", BLOCKED),
    _pro("stranger", STRANGER),
)


def _store(services: Services, person: Person, status: InsStatus) -> str:
    traits = Traits.create(person.birth_name, person.given, person.birth, person.sex, person.place)
    body = apply_to_patient(
        {"resourceType": "Patient"}, traits, status, Ins(INS_NIR_OID, person.nir), outgoing=False
    )
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


@pytest.fixture(scope="module")
def finder(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[tuple[PatientFinder, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("lookup") / "data"
    migrated_sqlite.copy_into(data_dir)
    services = build_services(make_settings(data_dir), migrate=False)
    ids = {
        "claire": _store(services, CLAIRE, InsStatus.QUAL),
        "paul": _store(services, PAUL, InsStatus.RECUP),
        "odile": _store(services, ODILE, InsStatus.QUAL),
    }
    for name in ("claire", "paul", "odile"):
        person = RequestContext(Principal(Kind.PERSON, f"acct-{name}", patient_id=ids[name]), name)
        services.controls.declare_care(person, None, GP, medecin_traitant=False)
        services.controls.declare_care(person, None, BLOCKED, medecin_traitant=False)
    odile = RequestContext(Principal(Kind.PERSON, "acct-odile", patient_id=ids["odile"]), "odile")
    services.controls.set_block(odile, None, BLOCKED, on=True)
    services.controls.set_block(odile, None, GP, on=False)
    yield PatientFinder(services.fhir, services.crypto.blind), ids
    services.close()


def test_a_name_alone_is_refused_with_a_clear_message(
    finder: tuple[PatientFinder, dict[str, str]],
) -> None:
    find, _ = finder
    for traits in (("Lefebvre", "", "", ""), ("Lefebvre", "Claire", "", ""), ("", "", "", "F")):
        with pytest.raises(PatientLookupError, match="a name alone is never enough"):
            find.by_traits(AS_GP, *traits)


def test_found_by_ins_with_a_qualified_ins_shown_as_such(
    finder: tuple[PatientFinder, dict[str, str]],
) -> None:
    find, ids = finder
    [claire] = find.by_ins(AS_GP, CLAIRE.nir)
    assert claire.patient_id == ids["claire"] and claire.qualified
    [paul] = find.by_ins(AS_GP, " ".join([PAUL.nir[:1], PAUL.nir[1:]]))  # spaces ignored
    assert paul.patient_id == ids["paul"] and not paul.qualified
    assert paul.status is InsStatus.RECUP


def test_found_by_strict_traits_whatever_the_case_and_accents(
    finder: tuple[PatientFinder, dict[str, str]],
) -> None:
    find, ids = finder
    born = CLAIRE.birth.isoformat()
    for name, first in (
        ("Lefebvre", "Claire"),
        ("lefèbvre", "claire anne"),
        ("LEFEBVRE", "CLAIRE"),
    ):
        assert [p.patient_id for p in find.by_traits(AS_GP, name, first, born, "F")] == [
            ids["claire"]
        ]


def test_traits_that_differ_in_one_point_find_nobody(
    finder: tuple[PatientFinder, dict[str, str]],
) -> None:
    find, _ = finder
    born = CLAIRE.birth.isoformat()
    assert find.by_traits(AS_GP, "Lefebvre", "Claire", born, "M") == []
    assert find.by_traits(AS_GP, "Lefebvre", "Anne", born, "F") == []  # not the first first name
    assert find.by_traits(AS_GP, "Lefebvre", "Claire", "1990-05-04", "F") == []
    assert find.by_traits(AS_GP, "Lefebvr", "Claire", born, "F") == []  # no prefix match


def test_nothing_found_alike_for_an_unknown_a_foreign_and_a_blocking_record(
    finder: tuple[PatientFinder, dict[str, str]],
) -> None:
    find, ids = finder
    assert [p.patient_id for p in find.by_ins(AS_GP, ODILE.nir)] == [ids["odile"]]
    assert find.by_ins(AS_BLOCKED, ODILE.nir) == []  # blocked by Odile
    assert find.by_ins(AS_STRANGER, CLAIRE.nir) == []  # no care relationship
    unknown = Person("Martin", "Jeanne", CLAIRE.birth, "F", order=999)
    assert find.by_ins(AS_GP, unknown.nir) == []
    born = ODILE.birth.isoformat()
    assert find.by_traits(AS_BLOCKED, "Garnier", "Odile", born, "F") == []


def test_an_invalid_ins_is_refused_without_repeating_it(
    finder: tuple[PatientFinder, dict[str, str]],
) -> None:
    find, _ = finder
    broken = CLAIRE.nir[:-2] + ("00" if CLAIRE.nir[-2:] != "00" else "01")
    with pytest.raises(PatientLookupError) as refused:
        find.by_ins(AS_GP, broken)
    assert broken not in str(refused.value)
    with pytest.raises(PatientLookupError):
        find.by_ins(AS_GP, "Lefebvre")


def test_an_emergency_finds_the_record_of_an_ins_without_a_right_on_it(
    finder: tuple[PatientFinder, dict[str, str]],
) -> None:
    find, ids = finder
    assert find.by_ins(AS_STRANGER, CLAIRE.nir) == []
    assert find.emergency_patient(AS_STRANGER, CLAIRE.nir) == ids["claire"]
    unknown = Person("Martin", "Jeanne", CLAIRE.birth, "F", order=999)
    assert find.emergency_patient(AS_STRANGER, unknown.nir) is None
