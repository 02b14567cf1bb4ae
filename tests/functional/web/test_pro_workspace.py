"""The professionals' workspace over HTTP (carnet/web/pro): find a patient, the record, search in
it, deposit, emergency access; and its denials: a blocked professional, a foreign or hidden item's
address answering like a missing one, emergency access refused after opposition, a form without
its CSRF token. The browser journey is test_pro_journey.py."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carnet.app import Services, build_services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.caller import Kind, Principal, RequestContext
from carnet.demo.pdf import make_pdf
from carnet.identity.ins import INS_NIR_OID, Ins, InsStatus, Traits, apply_to_patient
from tests.conftest import make_settings
from tests.support.audit_log import logged_events
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate
from tests.unit.record.helpers import CLAIRE, ODILE, PAUL, Person

BASE = "http://127.0.0.1"
GP, NURSE, BLOCKED, STRANGER = "10000000011", "10000000029", "10000000037", "10000000045"
_numbers = itertools.count(1)


@dataclass
class Workspace:
    services: Services
    app: Any
    claire: str
    odile: str
    paul: str
    fracture: str
    hepatitis: str
    odile_doc: str


def _patient(services: Services, person: Person, status: InsStatus) -> str:
    traits = Traits.create(person.birth_name, person.given, person.birth, person.sex, person.place)
    body = apply_to_patient(
        {"resourceType": "Patient"}, traits, status, Ins(INS_NIR_OID, person.nir), outgoing=False
    )
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _pdf_document(patient: str, title: str, lines: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}], "text": title},
        "subject": {"reference": f"Patient/{patient}"},
        "date": "2025-03-12T10:00:00+01:00",
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(make_pdf(title, lines)).decode(),
                }
            }
        ],
    }


def _create(services: Services, body: dict[str, Any]) -> str:
    return services.fhir.create(body["resourceType"], body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _person(patient_id: str) -> RequestContext:
    return RequestContext(Principal(Kind.PERSON, f"acct-{patient_id}", patient_id=patient_id), "p")


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate
) -> Iterator[Workspace]:
    data_dir = tmp_path_factory.mktemp("workspace") / "data"
    migrated_sqlite.copy_into(data_dir)
    services = build_services(make_settings(data_dir), migrate=False)
    claire = _patient(services, CLAIRE, InsStatus.QUAL)
    odile = _patient(services, ODILE, InsStatus.RECUP)
    paul = _patient(services, PAUL, InsStatus.QUAL)
    fracture = _create(
        services,
        _pdf_document(claire, "Compte rendu des urgences", ["Poignet gauche fracturé, plâtre."]),
    )
    hepatitis = _create(
        services, _pdf_document(claire, "Compte rendu de consultation", ["Hépatite C chronique."])
    )
    odile_doc = _create(
        services, _pdf_document(odile, "Compte rendu de consultation", ["Fracture du fémur."])
    )
    _create(
        services,
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "laboratory",
                        }
                    ]
                }
            ],
            "code": {"text": "Glycémie à jeun"},
            "subject": {"reference": f"Patient/{claire}"},
            "effectiveDateTime": "2025-01-10",
            "valueQuantity": {"value": 7.2, "unit": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 5.5}}],
            "interpretation": [{"coding": [{"code": "H"}]}],
        },
    )
    controls = services.controls
    for rpps in (GP, NURSE, BLOCKED):
        controls.declare_care(_person(claire), None, rpps, medecin_traitant=rpps == GP)
        controls.declare_care(_person(odile), None, rpps, medecin_traitant=False)
    controls.set_mask(_person(claire), f"DocumentReference/{hepatitis}", "MASQUE_PS", on=True)
    controls.set_block(_person(odile), None, BLOCKED, on=True)
    controls.set_preferences(_person(odile), None, emergency_opposition=True)
    app = create_app(services.settings, services)
    yield Workspace(services, app, claire, odile, paul, fracture, hepatitis, odile_doc)
    services.close()


def _client(workspace: Workspace, rpps: str | None, patient: str | None = None) -> TestClient:
    """A browser of its own, signed in as the professional ``rpps`` (or the person ``patient``)."""
    services = workspace.services
    n = next(_numbers)
    if rpps is not None:
        known = services.accounts.find_by_rpps(rpps)
        account = (
            known.account_id
            if known is not None
            else services.accounts.create_professional(f"pro{n}", None, rpps, "physician")
        )
    else:
        account = services.accounts.create_person(
            f"p{n}@example.org", "correct horse battery", patient
        )
    cookie, csrf = services.sessions.open(account, second_factor=True)
    client = TestClient(workspace.app, base_url=BASE)
    client.cookies.set(SESSION_COOKIE, cookie)
    client.cookies.set(CSRF_COOKIE, csrf)
    client.headers["X-Test-Csrf"] = csrf  # read back by _post
    return client


def _post(client: TestClient, path: str, data: dict[str, str], **kwargs: Any) -> Any:
    return client.post(
        path,
        data={"csrf_token": client.headers["X-Test-Csrf"], **data},
        follow_redirects=False,
        **kwargs,
    )


def _same_page(html: str, asked: str) -> str:
    """The page without the address it was asked at (the language link repeats it)."""
    return html.replace(asked, "ASKED")


# -- find a patient ---------------------------------------------------------------------------------


def test_find_by_ins_shows_a_qualified_ins_and_links_the_record(workspace: Workspace) -> None:
    gp = _client(workspace, GP)
    page = _post(gp, "/pro", {"mode": "ins", "ins": CLAIRE.nir})
    assert page.status_code == 200
    assert f'href="/pro/patients/{workspace.claire}"' in page.text
    assert "INS qualifiée" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_find_by_traits_needs_all_four_and_a_name_alone_is_refused(workspace: Workspace) -> None:
    gp = _client(workspace, GP)
    refused = _post(gp, "/pro", {"mode": "traits", "birth_name": "Lefebvre"})
    assert refused.status_code == 400
    assert "un nom seul ne suffit jamais" in refused.text
    assert 'aria-invalid="true"' in refused.text
    found = _post(
        gp,
        "/pro",
        {
            "mode": "traits",
            "birth_name": "lefèbvre",
            "first_name": "Claire",
            "birth_date": CLAIRE.birth.isoformat(),
            "sex": "F",
        },
    )
    assert f"/pro/patients/{workspace.claire}" in found.text


def test_a_blocked_professional_finds_nothing_as_for_an_unknown_ins(workspace: Workspace) -> None:
    blocked = _client(workspace, BLOCKED)
    refused = _post(blocked, "/pro", {"mode": "ins", "ins": ODILE.nir})
    unknown = _post(
        blocked, "/pro", {"mode": "ins", "ins": Person("X", "Y", CLAIRE.birth, "F", order=998).nir}
    )
    assert refused.status_code == unknown.status_code == 200
    assert "Aucun dossier que vous pouvez ouvrir ne correspond." in refused.text
    assert refused.text.replace(ODILE.nir, "").count("/pro/patients/") == 0


# -- the record -------------------------------------------------------------------------------------


def test_the_record_page_shows_the_synthesis_documents_and_no_masked_one(
    workspace: Workspace,
) -> None:
    nurse = _client(workspace, NURSE)
    page = nurse.get(f"/pro/patients/{workspace.claire}")
    assert page.status_code == 200
    assert "Synthèse" in page.text and "Problèmes de santé" in page.text
    assert "Compte rendu des urgences" in page.text
    assert "Glycémie à jeun" in page.text and "7,2" in page.text  # a decimal comma
    assert "3,9 – 5,5" in page.text and "élevé" in page.text
    assert (
        workspace.hepatitis not in page.text
    )  # masked from professionals (not the médecin traitant)
    gp = _client(workspace, GP)
    assert workspace.hepatitis in gp.get(f"/pro/patients/{workspace.claire}").text


def test_opening_a_record_prepares_its_documents_for_a_first_search(workspace: Workspace) -> None:
    nurse = _client(workspace, NURSE)
    assert nurse.get(f"/pro/patients/{workspace.claire}").status_code == 200
    search = workspace.services.record_search
    held = search.cache.held(("DocumentReference", workspace.fracture, 1))
    assert held is not None and any(f.kind == "document" for f in held.fields)


def test_a_blocked_professional_meets_the_page_of_a_missing_record(workspace: Workspace) -> None:
    blocked = _client(workspace, BLOCKED)
    refused = blocked.get(f"/pro/patients/{workspace.odile}")
    missing = blocked.get("/pro/patients/no-such-patient")
    assert refused.status_code == missing.status_code == 404
    assert _same_page(refused.text, workspace.odile) == _same_page(missing.text, "no-such-patient")


def test_a_direct_url_to_a_foreign_or_hidden_document_answers_like_a_missing_one(
    workspace: Workspace,
) -> None:
    nurse = _client(workspace, NURSE)  # cares for both Claire and Odile
    base = f"/pro/patients/{workspace.claire}/documents"
    own = nurse.get(f"{base}/{workspace.fracture}")
    assert own.status_code == 200 and own.content.startswith(b"%PDF-")
    assert own.headers["content-disposition"] == "attachment"
    foreign = nurse.get(f"{base}/{workspace.odile_doc}")  # Odile's, under Claire's record
    hidden = nurse.get(f"{base}/{workspace.hepatitis}")  # masked from the nurse
    missing = nurse.get(f"{base}/no-such-document")
    assert foreign.status_code == hidden.status_code == missing.status_code == 404
    pages = {
        _same_page(foreign.text, workspace.odile_doc),
        _same_page(hidden.text, workspace.hepatitis),
        _same_page(missing.text, "no-such-document"),
    }
    assert len(pages) == 1


# -- search in the record ---------------------------------------------------------------------------


def test_search_in_the_record_finds_stems_and_never_the_masked_document(
    workspace: Workspace,
) -> None:
    nurse = _client(workspace, NURSE)
    path = f"/pro/patients/{workspace.claire}/recherche"
    found = _post(nurse, path, {"q": "fracture platre"})
    assert found.status_code == 200
    assert "<mark>fracturé</mark>" in found.text and "<mark>plâtre</mark>" in found.text
    hidden = _post(nurse, path, {"q": "hépatite chronique"})
    assert "Rien ne correspond dans ce que vous pouvez voir" in hidden.text
    assert "chronique" not in hidden.text.replace("hépatite chronique", "")
    empty = _post(nurse, path, {"q": "  "})
    assert empty.status_code == 400


def test_search_of_a_record_the_professional_may_not_open_answers_like_a_missing_one(
    workspace: Workspace,
) -> None:
    blocked = _client(workspace, BLOCKED)
    refused = _post(blocked, f"/pro/patients/{workspace.odile}/recherche", {"q": "fracture"})
    missing = _post(blocked, "/pro/patients/nobody/recherche", {"q": "fracture"})
    assert refused.status_code == missing.status_code == 404
    assert _same_page(refused.text, workspace.odile) == _same_page(missing.text, "nobody")


# -- deposit ----------------------------------------------------------------------------------------


def test_a_deposit_invisible_to_the_patient_is_seen_by_care_only(workspace: Workspace) -> None:
    gp = _client(workspace, GP)
    pdf = make_pdf("Résultat à annoncer", ["Biopsie : à annoncer en consultation."])
    done = _post(
        gp,
        f"/pro/patients/{workspace.claire}/depot",
        {"type": "11502-2", "date": "2025-03-01", "invisible_patient": "1"},
        files={"file": ("biopsie.pdf", pdf, "application/pdf")},
    )
    assert done.status_code == 303, done.text[:500]
    assert done.headers["location"] == f"/pro/patients/{workspace.claire}"
    services = workspace.services
    mine = services.fhir.search(
        BASE, "DocumentReference", [("patient", workspace.claire)], ctx=_person(workspace.claire)
    )
    care = services.fhir.search(
        BASE, "DocumentReference", [("patient", workspace.claire)], ctx=_client_ctx(GP)
    )
    titles = lambda b: {e["resource"].get("description") for e in b.get("entry", [])}  # noqa: E731
    assert "Compte rendu d'examens biologiques" in titles(care)
    assert "Compte rendu d'examens biologiques" not in titles(mine)


def _client_ctx(rpps: str) -> RequestContext:
    return RequestContext(
        Principal(Kind.PROFESSIONAL, f"pro-{rpps}", rpps=rpps, profession="physician"), rpps
    )


def test_a_deposit_with_a_wrong_file_is_refused_and_stores_nothing(workspace: Workspace) -> None:
    gp = _client(workspace, GP)
    before = workspace.services.fhir.search(
        BASE, "DocumentReference", [("_summary", "count")], ctx=AS_LOCAL_OPERATOR
    )["total"]
    refused = _post(
        gp,
        f"/pro/patients/{workspace.claire}/depot",
        {"type": "11502-2", "date": "2025-03-01"},
        files={"file": ("x.pdf", b"<html>not a pdf</html>", "application/pdf")},
    )
    assert refused.status_code == 400
    assert "PDF" in refused.text
    after = workspace.services.fhir.search(
        BASE, "DocumentReference", [("_summary", "count")], ctx=AS_LOCAL_OPERATOR
    )["total"]
    assert after == before


# -- emergency access -------------------------------------------------------------------------------


def test_emergency_access_is_refused_after_opposition_alike_for_an_unknown_ins(
    workspace: Workspace,
) -> None:
    stranger = _client(workspace, STRANGER)
    opposed = _post(stranger, "/pro/urgence", {"ins": ODILE.nir, "reason": "unconscious"})
    unknown_nir = Person("Inconnu", "Jean", CLAIRE.birth, "M", order=997).nir
    unknown = _post(stranger, "/pro/urgence", {"ins": unknown_nir, "reason": "unconscious"})
    assert opposed.status_code == unknown.status_code == 403
    assert opposed.text == unknown.text
    assert stranger.get(f"/pro/patients/{workspace.odile}").status_code == 404
    refusals = [
        e for e in logged_events(workspace.services) if e["action"] == "break-glass-refused"
    ]
    assert refusals and "emergency-opposition" in refusals[-1]["rule"]


def test_emergency_access_needs_a_reason(workspace: Workspace) -> None:
    stranger = _client(workspace, STRANGER)
    refused = _post(stranger, "/pro/urgence", {"ins": PAUL.nir, "reason": ""})
    assert refused.status_code == 400
    assert "Choisissez le motif" in refused.text


def test_emergency_access_opens_the_record_with_a_red_banner_and_is_audited(
    workspace: Workspace,
) -> None:
    stranger = _client(workspace, STRANGER)
    assert stranger.get(f"/pro/patients/{workspace.paul}").status_code == 404
    opened = _post(stranger, "/pro/urgence", {"ins": PAUL.nir, "reason": "life-threatening"})
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/pro/patients/{workspace.paul}"
    page = stranger.get(f"/pro/patients/{workspace.paul}")
    assert page.status_code == 200
    assert 'class="banner-danger"' in page.text and "Accès en urgence" in page.text
    events = logged_events(workspace.services)
    granted = [e for e in events if e["action"] == "break-glass"]
    assert granted and "life-threatening" in granted[-1]["rule"]
    assert any(e["purpose"] == "emergency" and e["action"] == "read" for e in events)


def test_an_emergency_form_without_its_csrf_token_is_refused_and_opens_nothing(
    workspace: Workspace,
) -> None:
    nurse = _client(workspace, NURSE)
    refused = nurse.post(
        "/pro/urgence", data={"ins": PAUL.nir, "reason": "unconscious"}, follow_redirects=False
    )
    assert refused.status_code == 403
    assert nurse.get(f"/pro/patients/{workspace.paul}").status_code == 404


def test_workspace_pages_are_for_professionals_only(workspace: Workspace) -> None:
    person = _client(workspace, None, workspace.claire)
    assert person.get("/pro").status_code == 403
    anonymous = TestClient(workspace.app, base_url=BASE)
    answer = anonymous.get("/pro", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/connexion")
