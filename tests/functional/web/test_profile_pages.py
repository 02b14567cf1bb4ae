"""The medical profile over HTTP: a person adds, edits and deletes the items of each kind (with
POST-redirect-GET and a confirmation before deleting), bad input gets messages tied to its
fields and stores nothing, every write is audited as the person; a representative completes the
profile of the child they represent; the wrong caller, a form without its CSRF token, and
another person's or care's item are refused (the last two answering like a missing item).
One store and one app for the module; each test writes items of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from carnet.app import Services, create_app
from carnet.audit.models import audit_event
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import Kind, Principal, RequestContext
from carnet.web.profile.declared import is_declared
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.module_services import module_services_fixture
from tests.support.record_pages import PDF

BASE = "http://127.0.0.1"
PASSWORD = "correct horse battery"

shared = module_services_fixture()

# A valid form of each kind that has one (advance directives are uploaded as documents).
VALID: dict[str, dict[str, str]] = {
    "antecedents": {
        "libelle": "Asthme",
        "categorie": "problem-list-item",
        "debut": "03/2015",
        "statut": "active",
    },
    "allergies": {"substance": "Pénicilline", "reaction": "Urticaire", "gravite": "high"},
    "traitements": {"medicament": "Ventoline", "posologie": "2 bouffées", "depuis": "2020"},
    "famille": {"lien": "MTH", "maladie": "Diabète", "age": "55"},
    "vaccinations": {"vaccin": "DTP", "date": "12/03/2019", "lot": "AB12"},
    "mesures": {"mesure": "poids", "valeur": "72,5", "date": "2025-03-12"},
    "don-organes": {"position": "refuse", "precisions": ""},
    "contacts": {"nom": "Luc Martin", "lien": "SPS", "urgence": "1", "telephone": "0612345678"},
    "professionnels": {"nom": "Dr Claire Martin", "profession": "Cardiologue", "rpps": ""},
}


@dataclass
class World:
    services: Services
    app: FastAPI
    patient: str
    other: str
    parent: str
    child: str
    accounts: dict[str, str]
    care_allergy: str  # written by care, not by the patient


def _patient(services: Services, born: str) -> str:
    body = {"resourceType": "Patient", "birthDate": born}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


@pytest.fixture(scope="module")
def world(shared: Services) -> Iterator[World]:
    s = shared
    patient, other, parent, child = (
        _patient(s, born) for born in ("1970-04-02", "1960-01-01", "1980-01-01", "2015-06-01")
    )
    for pid in (patient, other, parent, child):
        s.record.open_space(pid, ctx=AS_LOCAL_OPERATOR)
    s.record.representatives.add(child, parent, "parent", ctx=AS_LOCAL_OPERATOR)
    care_allergy = s.fhir.create(
        "AllergyIntolerance",
        {
            "resourceType": "AllergyIntolerance",
            "code": {"text": "Iode"},
            "patient": {"reference": f"Patient/{patient}"},
        },
        ctx=AS_LOCAL_OPERATOR,
    ).stored.res_id
    accounts = {
        "patient": s.accounts.create_person("p@example.org", PASSWORD, patient),
        "other": s.accounts.create_person("o@example.org", PASSWORD, other),
        "parent": s.accounts.create_person("r@example.org", PASSWORD, parent),
        "pro": s.accounts.create_professional("d", None, "10000000077", "physician"),
    }
    yield World(s, create_app(s.settings, s), patient, other, parent, child, accounts, care_allergy)


def _client(world: World, who: str) -> tuple[TestClient, str]:
    client = TestClient(world.app, base_url=BASE)
    cookie, csrf = world.services.sessions.open(world.accounts[who], second_factor=True)
    client.cookies.set(SESSION_COOKIE, cookie)
    client.cookies.set(CSRF_COOKIE, csrf)
    return client, csrf


def _declared(world: World, res_type: str, patient: str) -> list[dict[str, Any]]:
    principal = Principal(Kind.PERSON, "acct-check", patient_id=patient)
    ctx = RequestContext(principal, principal.subject)
    bundle = world.services.fhir.search(
        world.services.settings.fhir_base_url, res_type, [("patient", patient)], ctx=ctx
    )
    return [e["resource"] for e in bundle.get("entry", []) if is_declared(e["resource"])]


def _item_ids(page: str, slug: str) -> list[str]:
    found = re.findall(rf'href="/espace/profil/{slug}/([^"/?#]+)', page)
    return [i for i in dict.fromkeys(found) if i != "ajout"]


def test_every_kind_with_a_form_stores_a_valid_patient_declared_item(world: World) -> None:
    client, csrf = _client(world, "patient")
    for slug, fields in VALID.items():
        assert client.get(f"/espace/profil/{slug}/ajout").status_code == 200, slug
        done = client.post(
            f"/espace/profil/{slug}/ajout",
            data={"csrf_token": csrf, **fields},
            follow_redirects=False,
        )
        assert done.status_code == 303, (slug, done.text[-2000:])
        assert done.headers["location"] == f"/espace/profil#{slug}"
    page = client.get("/espace/profil").text
    for slug in VALID:
        assert _item_ids(page, slug), f"{slug}: nothing listed"
    for res_type in ("Condition", "FamilyMemberHistory", "RelatedPerson", "CareTeam"):
        assert _declared(world, res_type, world.patient), res_type
    vaccination = _declared(world, "Immunization", world.patient)[0]
    assert vaccination["primarySource"] is False
    assert vaccination["occurrenceDateTime"] == "2019-03-12"
    client.cookies.set("carnet_lang", "en")
    english = client.get("/espace/profil").text
    assert " — Mother" in english and "Spouse or partner" in english  # choices translated
    condition = _declared(world, "Condition", world.patient)[0]
    assert (
        condition["recorder"] == condition["asserter"] == {"reference": f"Patient/{world.patient}"}
    )
    assert condition["onsetDateTime"] == "2015-03"


def test_a_measurement_with_a_decimal_comma_feeds_the_chart(world: World) -> None:
    client, csrf = _client(world, "patient")
    fields = {"mesure": "glycemie", "valeur": "1,07", "date": "14/02/2025"}
    done = client.post("/espace/profil/mesures/ajout", data={"csrf_token": csrf, **fields})
    assert done.status_code == 200 and "1,07" in done.text
    chart = client.get("/dossier/mesures/glycemie").text
    assert "1,07" in chart and "14 février 2025" in chart


def test_every_write_is_audited_as_the_person(world: World) -> None:
    client, csrf = _client(world, "patient")
    fields = {"csrf_token": csrf, **VALID["allergies"], "substance": "Latex"}
    assert client.post("/espace/profil/allergies/ajout", data=fields).status_code == 200
    world.services.audit.flush()
    with world.services.engine.connect() as conn:
        bodies = [orjson.loads(r.body) for r in conn.execute(audit_event.select())]
    mine = [b for b in bodies if b["actor"] == world.accounts["patient"]]
    creates = [b for b in mine if b["action"] == "create" and b["type"] == "AllergyIntolerance"]
    assert creates and all(b["role"] == "person" and b["outcome"] < 300 for b in creates)


def test_bad_input_is_explained_on_the_form_and_stores_nothing(world: World) -> None:
    client, csrf = _client(world, "patient")
    before = len(_declared(world, "Observation", world.patient))
    fields = {"mesure": "poids", "valeur": "soixante", "date": "31/02/2025"}
    page = client.post("/espace/profil/mesures/ajout", data={"csrf_token": csrf, **fields})
    assert page.status_code == 400
    assert 'aria-describedby="f-valeur-hint f-valeur-error"' in page.text
    assert 'id="f-date"' in page.text and "f-date-error" in page.text
    assert "Saisissez un nombre, par exemple 72,5." in page.text
    assert 'href="#f-valeur"' in page.text  # the summary links to the field
    assert 'value="soixante"' in page.text  # what was typed is shown again
    future = {"mesure": "tension", "systolique": "80", "diastolique": "120", "date": "2025-01-01"}
    page = client.post("/espace/profil/mesures/ajout", data={"csrf_token": csrf, **future})
    assert page.status_code == 400 and "plus haute que la diastolique" in page.text
    assert len(_declared(world, "Observation", world.patient)) == before


def test_an_item_is_edited_then_deleted_after_confirmation(world: World) -> None:
    client, csrf = _client(world, "patient")
    fields = {**VALID["traitements"], "medicament": "Kardégic 75 mg"}
    client.post("/espace/profil/traitements/ajout", data={"csrf_token": csrf, **fields})
    page = client.get("/espace/profil").text
    item = next(i for i in _item_ids(page, "traitements") if "Kardégic" in page)
    form = client.get(f"/espace/profil/traitements/{item}")
    assert "Kardégic 75 mg" in form.text and 'value="2020"' in form.text
    version = re.search(r'name="version" value="(\d+)"', form.text)
    assert version is not None
    changed = {**fields, "posologie": "1 le matin", "version": version.group(1)}
    done = client.post(
        f"/espace/profil/traitements/{item}",
        data={"csrf_token": csrf, **changed},
        follow_redirects=False,
    )
    assert done.status_code == 303
    stale = client.post(f"/espace/profil/traitements/{item}", data={"csrf_token": csrf, **changed})
    assert stale.status_code == 409 and "modifié entre-temps" in stale.text
    forged = {**changed, "version": '1", W/"2'}
    refused = client.post(f"/espace/profil/traitements/{item}", data={"csrf_token": csrf, **forged})
    assert refused.status_code == 409
    assert "1 le matin" in client.get("/espace/profil").text
    confirm = client.get(f"/espace/profil/traitements/{item}/suppression")
    assert confirm.status_code == 200 and "Kardégic 75 mg" in confirm.text
    done = client.post(
        f"/espace/profil/traitements/{item}/suppression",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "Kardégic" not in client.get("/espace/profil").text
    assert client.get(f"/espace/profil/traitements/{item}").status_code == 404


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(world: World) -> None:
    client, _ = _client(world, "patient")
    before = len(_declared(world, "FamilyMemberHistory", world.patient))
    refused = client.post("/espace/profil/famille/ajout", data=VALID["famille"])
    assert refused.status_code == 403
    assert len(_declared(world, "FamilyMemberHistory", world.patient)) == before


def test_another_persons_item_answers_like_a_missing_one_and_stays_as_it_was(
    world: World,
) -> None:
    owner, csrf = _client(world, "patient")
    fields = {**VALID["allergies"], "substance": "Arachide"}
    owner.post("/espace/profil/allergies/ajout", data={"csrf_token": csrf, **fields})
    item = next(
        i["id"] for i in _declared(world, "AllergyIntolerance", world.patient)
        if i["code"]["text"] == "Arachide"
    )  # fmt: skip
    intruder, their_csrf = _client(world, "other")
    for path in (
        f"/espace/profil/allergies/{item}",
        f"/espace/profil/allergies/{item}/suppression",
    ):
        missing_path = path.replace(item, "no-such-item")
        asked, missing = intruder.get(path), intruder.get(missing_path)
        assert asked.status_code == 404
        assert asked.text.replace(item, "ID") == missing.text.replace("no-such-item", "ID")
        form = {"csrf_token": their_csrf, **fields, "substance": "X"}
        posted, missing = intruder.post(path, data=form), intruder.post(missing_path, data=form)
        assert posted.status_code == missing.status_code == 404
        assert posted.text.replace(item, "ID") == missing.text.replace("no-such-item", "ID")
    too_long = owner.get(f"/espace/profil/allergies/{item}{'0' * 64}")  # never truncated
    assert too_long.status_code == 404
    assert any(
        i["id"] == item and i["code"]["text"] == "Arachide"
        for i in _declared(world, "AllergyIntolerance", world.patient)
    )


def test_an_item_written_by_care_is_not_edited_through_the_profile(world: World) -> None:
    client, csrf = _client(world, "patient")
    path = f"/espace/profil/allergies/{world.care_allergy}"
    assert client.get(path).status_code == 404
    posted = client.post(path + "/suppression", data={"csrf_token": csrf})
    assert posted.status_code == 404
    assert "Iode" not in client.get("/espace/profil").text  # the profile lists declared items


def test_a_professional_is_refused_the_profile_pages(world: World) -> None:
    client, csrf = _client(world, "pro")
    assert client.get("/espace/profil").status_code == 403
    refused = client.post(
        "/espace/profil/allergies/ajout", data={"csrf_token": csrf, **VALID["allergies"]}
    )
    assert refused.status_code == 403


def test_a_representative_completes_the_profile_of_the_child_they_represent(
    world: World,
) -> None:
    client, csrf = _client(world, "parent")
    fields = {"csrf_token": csrf, "pour": world.child, **VALID["vaccinations"], "vaccin": "ROR"}
    done = client.post("/espace/profil/vaccinations/ajout", data=fields, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/espace/profil?pour={world.child}#vaccinations"
    assert [i["vaccineCode"]["text"] for i in _declared(world, "Immunization", world.child)] == [
        "ROR"
    ]
    page = client.get("/espace/profil", params={"pour": world.child})
    assert "ROR" in page.text and "Vous agissez pour une personne" in page.text
    (item,) = _item_ids(page.text, "vaccinations")
    for path in (
        f"/espace/profil/vaccinations/{item}",
        f"/espace/profil/vaccinations/{item}/suppression",
    ):
        shown = client.get(
            path, params={"pour": world.child}
        )  # the record acted on, from the query
        assert shown.status_code == 200 and f'name="pour" value="{world.child}"' in shown.text
        assert client.get(path).status_code == 404  # not an item of the parent's own record
    stranger, their_csrf = _client(world, "other")
    fields = {**fields, "csrf_token": their_csrf}
    refused = stranger.post("/espace/profil/vaccinations/ajout", data=fields)
    assert refused.status_code == 404
    assert len(_declared(world, "Immunization", world.child)) == 1


def test_professionals_see_what_the_patient_declared_marked_as_such(world: World) -> None:
    client, csrf = _client(world, "patient")
    fields = {"csrf_token": csrf, **VALID["allergies"], "substance": "Ambroisie"}
    assert client.post("/espace/profil/allergies/ajout", data=fields).status_code == 200
    synthesis = client.get("/dossier/synthese").text
    assert re.search(r"Ambroisie <span class=\"declared\">déclaré par le patient</span>", synthesis)
    principal = Principal(Kind.PERSON, world.accounts["patient"], patient_id=world.patient)
    world.services.controls.declare_care(
        RequestContext(principal, principal.subject), None, "10000000077", medecin_traitant=False
    )
    pro, _ = _client(world, "pro")
    record = pro.get(f"/pro/patients/{world.patient}")
    assert record.status_code == 200
    assert re.search(
        r"Ambroisie <span class=\"declared\">déclaré par le patient</span>", record.text
    )
    assert "Iode <span" not in record.text  # care's own allergy is not marked


def test_advance_directives_are_uploaded_as_a_declared_document_of_their_type(
    world: World,
) -> None:
    client, csrf = _client(world, "patient")
    form = client.get("/dossier/depot", params={"nature": "directives-anticipees"})
    assert 'name="nature" value="directives-anticipees"' in form.text
    done = client.post(
        "/dossier/depot",
        data={
            "csrf_token": csrf,
            "nature": "directives-anticipees",
            "classe": "autres",
            "date": "2024-05-02",
            "titre": "Mes directives anticipées",
        },
        files={"fichier": ("directives.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text[-1500:]
    (stored,) = [
        d for d in _declared(world, "DocumentReference", world.patient)
        if d["type"]["coding"][0]["code"] == "42348-3"
    ]  # fmt: skip
    profile = client.get("/espace/profil").text
    assert f'href="/espace/profil/directives/{stored["id"]}/suppression"' in profile
    assert "Mes directives anticipées" in profile
    assert client.get(f"/espace/profil/directives/{stored['id']}").status_code == 404  # not a form


MARKUP = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def _shows_markup_as_text(page: str) -> bool:
    return "<script>alert(1)" not in page and "<img src=x" not in page and "&lt;script&gt;" in page


def test_markup_in_profile_fields_is_shown_as_text_wherever_it_is_shown(world: World) -> None:
    client, csrf = _client(world, "other")
    fields = {**VALID["allergies"], "substance": MARKUP, "reaction": MARKUP}
    added = client.post("/espace/profil/allergies/ajout", data={"csrf_token": csrf, **fields})
    assert added.status_code == 200 and _shows_markup_as_text(added.text)  # the profile
    item = next(
        i["id"] for i in _declared(world, "AllergyIntolerance", world.other)
        if i["code"]["text"] == MARKUP
    )  # fmt: skip
    for path in (
        f"/espace/profil/allergies/{item}",
        f"/espace/profil/allergies/{item}/suppression",
    ):
        assert _shows_markup_as_text(client.get(path).text)
    too_long = {"csrf_token": csrf, **fields, "reaction": MARKUP * 10}  # shown again, refused
    again = client.post("/espace/profil/allergies/ajout", data=too_long)
    assert again.status_code == 400 and _shows_markup_as_text(again.text)
    principal = Principal(Kind.PERSON, world.accounts["other"], patient_id=world.other)
    world.services.controls.declare_care(
        RequestContext(principal, principal.subject), None, "10000000077", medecin_traitant=False
    )
    pro, _ = _client(world, "pro")
    record = pro.get(f"/pro/patients/{world.other}")
    assert record.status_code == 200 and _shows_markup_as_text(record.text)


def test_a_stranger_naming_a_child_in_pour_reaches_none_of_the_childs_items(
    world: World,
) -> None:
    parent, parents_csrf = _client(world, "parent")
    fields = {**VALID["allergies"], "substance": "Sésame"}
    parent.post(
        "/espace/profil/allergies/ajout",
        data={"csrf_token": parents_csrf, "pour": world.child, **fields},
    )
    item = next(
        i["id"] for i in _declared(world, "AllergyIntolerance", world.child)
        if i["code"]["text"] == "Sésame"
    )  # fmt: skip
    stranger, csrf = _client(world, "other")
    for path in (
        f"/espace/profil/allergies/{item}",
        f"/espace/profil/allergies/{item}/suppression",
    ):
        assert stranger.get(path, params={"pour": world.child}).status_code == 404
        form = {"csrf_token": csrf, "pour": world.child, **fields, "substance": "Changé"}
        assert stranger.post(path, data=form).status_code == 404
    # the parent's own record is not the child's: the item is not theirs without ``pour``
    assert parent.get(f"/espace/profil/allergies/{item}").status_code == 404
    assert any(
        i["id"] == item and i["code"]["text"] == "Sésame"
        for i in _declared(world, "AllergyIntolerance", world.child)
    )


def test_a_form_sent_twice_stores_one_item(world: World) -> None:
    """A person who sends the form again (the answer lost, a crash mid-write, a double click)
    finds one item, not two: each add form carries its own submission id."""
    client, csrf = _client(world, "parent")
    form = client.get("/espace/profil/traitements/ajout").text
    found = re.search(r'name="envoi" value="([0-9a-f]{32})"', form)
    assert found is not None
    fields = {"csrf_token": csrf, "envoi": found.group(1), **VALID["traitements"]}
    fields["medicament"] = "Doliprane"
    for _ in range(2):
        sent = client.post("/espace/profil/traitements/ajout", data=fields, follow_redirects=False)
        assert sent.status_code == 303
    stored = [
        i for i in _declared(world, "MedicationStatement", world.parent)
        if "Doliprane" in orjson.dumps(i).decode()
    ]  # fmt: skip
    assert len(stored) == 1
    another = client.get("/espace/profil/traitements/ajout").text
    assert found.group(1) not in another  # a new form, a new submission
