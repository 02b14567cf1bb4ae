"""Every page the portal mounts, asked by every kind of caller, answers as the table says: a
redirect to sign-in, the 403 page, the 404 page of a missing item, or the page itself.

The routes are enumerated from the application (endpoints under ``carnet.web``), so a new page is
covered as soon as it is mounted, and this file fails until the table (page_table.py, beside it)
says how to call it and what each caller gets. A foreign or hidden item's address answers exactly like a missing one.
Cheap in-process client, one store and one app for the module.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from httpx2 import Response

from carnet.app import Services, create_app
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE
from carnet.authn.routes import ROUTE_GUARDS
from carnet.caller import Kind, Principal, RequestContext
from carnet.web.patient_controls.deps import PATIENT_PARAM, ActedOn
from carnet.web.profile.declared import DECLARED_TAG
from carnet.web.security import CSRF_FIELD, FORM_COOKIE, new_form_token
from tests.functional.web.page_table import (
    CALLERS,
    FORBIDDEN,
    MISSING,
    SERVED,
    SIGN_IN,
    TABLE,
    Page,
)
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.module_services import module_services_fixture
from tests.support.record_pages import CARE_RPPS, RecordWorld, build_record

BASE = "http://127.0.0.1"
PASSWORD = "correct horse battery"
BLOCKED_RPPS, STRANGER_RPPS = "10000000085", "10000000093"
MISSING_ID = "no-such-item"

shared = module_services_fixture()  # one store for the whole matrix


@dataclass
class Matrix:
    services: Services
    app: FastAPI
    world: RecordWorld
    ids: dict[str, str]  # world item names -> ids, for the path parameters
    accounts: dict[str, str | None]  # caller -> account (None: anonymous)


def _person_ctx(patient_id: str) -> RequestContext:
    principal = Principal(Kind.PERSON, f"acct-{patient_id}", patient_id=patient_id)
    return RequestContext(principal, principal.subject)


def _new_patient(services: Services, born: str) -> str:
    body = {"resourceType": "Patient", "birthDate": born}
    return services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _child_document(child: str, title: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"text": title},
        "subject": {"reference": f"Patient/{child}"},
        "content": [{"attachment": {"contentType": "text/plain", "title": title}}],
    }


@pytest.fixture(scope="module")
def matrix(shared: Services) -> Iterator[Matrix]:
    services = shared
    world = build_record(services)  # its CARE_RPPS has a care relationship with the patient
    parent = _new_patient(services, "1980-01-01")
    child = _new_patient(services, "2015-06-01")
    for pid in (world.patient_id, world.other_patient_id, parent, child):
        services.record.open_space(pid, ctx=AS_LOCAL_OPERATOR)
    services.record.representatives.add(child, parent, "parent", ctx=AS_LOCAL_OPERATOR)
    child_docs = [
        services.fhir.create("DocumentReference", body, ctx=AS_LOCAL_OPERATOR).stored.res_id
        for body in (
            _child_document(child, "Carnet de vaccination"),
            _child_document(child, "Confidentiel"),
        )
    ]
    services.controls.set_mask(  # a minor keeps this one from their representatives
        _person_ctx(child),
        f"DocumentReference/{child_docs[1]}",
        "INVISIBLE_REPRESENTANTS_LEGAUX",
        on=True,
    )
    patient = _person_ctx(world.patient_id)
    services.controls.declare_care(patient, None, BLOCKED_RPPS, medecin_traitant=False)
    services.controls.set_block(patient, None, BLOCKED_RPPS, on=True)
    services.controls.set_mask(patient, f"DocumentReference/{world.letter}", "MASQUE_PS", on=True)
    accounts = services.accounts
    matrix_accounts: dict[str, str | None] = {
        "anonymous": None,
        "patient": accounts.create_person("a@example.org", PASSWORD, world.patient_id),
        "other_patient": accounts.create_person("b@example.org", PASSWORD, world.other_patient_id),
        "representative": accounts.create_person("r@example.org", PASSWORD, parent),
        "pro_stranger": accounts.create_professional("s", None, STRANGER_RPPS, "physician"),
        "pro_blocked": accounts.create_professional("k", None, BLOCKED_RPPS, "physician"),
        "pro_caring": accounts.create_professional("c", None, CARE_RPPS, "physician"),
        "operator": accounts.create_operator("op", PASSWORD),
    }
    app = create_app(services.settings, services)
    ids = {
        "patient": world.patient_id,
        "child": child,
        "consult": world.consult,
        "hidden": world.hidden,
        "masked": world.letter,
        "foreign": world.foreign,
        "child_doc": child_docs[0],
        "child_kept": child_docs[1],
    }
    ids.update(_declared_allergies(services, world.patient_id))
    built = Matrix(services, app, world, ids, matrix_accounts)
    ids["event"] = _an_event_of_the_patient(built)
    yield built


def _declared_allergies(services: Services, patient_id: str) -> dict[str, str]:
    """Two allergies the patient declared in their profile (one for the delete page to take),
    and one written by care."""
    ids = {}
    for name, ctx, declared in (
        ("declared", _person_ctx(patient_id), True),
        ("declared_spare", _person_ctx(patient_id), True),
        ("care_allergy", AS_LOCAL_OPERATOR, False),
    ):
        body: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "code": {"text": "Pénicilline"},
            "patient": {"reference": f"Patient/{patient_id}"},
        }
        if declared:
            body["meta"] = {"tag": [DECLARED_TAG]}
        ids[name] = services.fhir.create("AllergyIntolerance", body, ctx=ctx).stored.res_id
    return ids


def _client(matrix: Matrix, caller: str) -> tuple[TestClient, str]:
    """A browser of its own, signed in as ``caller`` with a fresh full session; the CSRF token
    its forms carry (the session's, also set as the double-submit cookie of the forms shown
    before sign-in, so one field passes either check)."""
    client = TestClient(matrix.app, base_url=BASE)
    account = matrix.accounts[caller]
    csrf = new_form_token()
    if account is not None:
        cookie, csrf = matrix.services.sessions.open(account, second_factor=True)
        client.cookies.set(SESSION_COOKIE, cookie)
        client.cookies.set(CSRF_COOKIE, csrf)
    client.cookies.set(FORM_COOKIE, csrf)
    return client, csrf


def _an_event_of_the_patient(matrix: Matrix) -> str:
    client, _ = _client(matrix, "patient")
    client.get(f"/dossier/documents/{matrix.world.consult}")  # an access of their own, audited
    matrix.services.audit.flush()
    page = client.get("/espace/historique")
    found = re.search(r'href="/espace/historique/([^"/?.]+)"', page.text)
    assert found is not None, "the patient's history lists no entry"
    return found.group(1)


def _portal_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = []
    for context in iter_route_contexts(app.routes):
        endpoint: Any = getattr(context, "endpoint", None)
        if endpoint is None or not endpoint.__module__.startswith("carnet.web"):
            continue
        for method in sorted(getattr(context, "methods", None) or ()):
            if method != "HEAD":
                routes.append((method, str(context.path)))
    return routes


def _path(matrix: Matrix, template: str, params: dict[str, str]) -> str:
    path = template
    for name, item in params.items():
        value = item[1:] if item.startswith("=") else matrix.ids.get(item, item)
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a parameter of {template}"
    return path


def _call(client: TestClient, csrf: str, method: str, path: str, page: Page) -> Response:
    if method == "GET":
        return client.get(path, follow_redirects=False)
    form = {CSRF_FIELD: csrf, **(page.form or {})}
    return client.post(path, data=form, follow_redirects=False)


def _outcome(answer: Response) -> str:
    status = answer.status_code
    if status in (302, 303, 307) and answer.headers["location"].startswith("/connexion?suivant="):
        return SIGN_IN
    if status == 403:
        return FORBIDDEN
    if status == 404:
        return MISSING
    if status >= 500:
        return f"error {status}"
    return SERVED


def _same_page(answer: Response, asked: str) -> tuple[int, str]:
    """The answer without the address it was asked at (the language link repeats it)."""
    return answer.status_code, answer.text.replace(asked, "ASKED")


def test_every_page_of_the_portal_is_in_the_authorisation_table(matrix: Matrix) -> None:
    mounted = _portal_routes(matrix.app)
    assert len(mounted) > 40  # the enumeration finds the portal (not an empty list)
    unknown = sorted(set(mounted) - set(TABLE))
    assert not unknown, f"pages this table does not know how to call: {unknown}"
    gone = sorted(set(TABLE) - set(mounted))
    assert not gone, f"pages in the table the portal no longer mounts: {gone}"


def test_every_page_of_the_portal_has_an_access_rule_of_the_guard(matrix: Matrix) -> None:
    """FastAPI keeps included routers whole in ``app.routes`` (no APIRoute at the top level), so
    the pages are enumerated through their route contexts here."""
    unguarded = sorted({path for _, path in _portal_routes(matrix.app)} - set(ROUTE_GUARDS))
    assert not unguarded


def test_every_page_answers_every_caller_as_the_table_says(matrix: Matrix) -> None:
    clients = {caller: _client(matrix, caller) for caller in CALLERS}
    wrong = []
    # Signing out ends the session: that page goes last.
    routes = sorted(_portal_routes(matrix.app), key=lambda r: r == ("POST", "/deconnexion"))
    for method, template in routes:
        page = TABLE[(method, template)]
        path = _path(matrix, template, page.params)
        for caller in CALLERS:
            client, csrf = clients[caller]
            got = _outcome(_call(client, csrf, method, path, page))
            expected = page.expects(method, caller)
            if got != expected:
                wrong.append(f"{method} {template} as {caller}: {got}, not {expected}")
    assert not wrong, "\n".join(wrong)


def test_a_foreign_or_hidden_item_answers_exactly_like_a_missing_one(matrix: Matrix) -> None:
    clients = {caller: _client(matrix, caller) for caller in CALLERS}
    different = []
    for (method, template), page in TABLE.items():
        if not page.params or all(v.startswith("=") for v in page.params.values()):
            continue
        missing_params = dict.fromkeys(page.params, MISSING_ID)
        if "patient_id" in page.params and "document_id" in page.params:
            missing_params["patient_id"] = page.params["patient_id"]
        asked = [(caller, page.params) for caller in CALLERS if page.expected[caller] == MISSING]
        asked.extend(page.hidden)
        for caller, params in asked:
            client, csrf = clients[caller]
            foreign_path = _path(matrix, template, params)
            missing_path = _path(matrix, template, missing_params)
            foreign = _same_page(_call(client, csrf, method, foreign_path, page), foreign_path)
            missing = _same_page(_call(client, csrf, method, missing_path, page), missing_path)
            if foreign[0] != 404 or foreign != missing:
                different.append(f"{method} {foreign_path} as {caller}: {foreign[0]}")
    assert not different, "\n".join(different)


def _acting_for_pages(app: FastAPI) -> list[tuple[str, str]]:
    """The pages that act on a represented person's record when given ``pour`` (those taking
    the record acted on as a dependency, or ``pour`` itself)."""
    pages: list[tuple[str, str]] = []
    for context in iter_route_contexts(app.routes):
        endpoint: Any = getattr(context, "endpoint", None)
        if endpoint is None or not endpoint.__module__.startswith("carnet.web"):
            continue
        hints = get_type_hints(endpoint, include_extras=True).values()
        acts_on_a_record = any(ActedOn in (hint, *get_args(hint)) for hint in hints)
        if acts_on_a_record or PATIENT_PARAM in inspect.signature(endpoint).parameters:
            pages.extend((method, str(context.path)) for method in context.methods or ())
    return sorted(pages)


def _call_for(
    client: TestClient, csrf: str, method: str, path: str, page: Page, pour: str
) -> Response:
    if method == "GET":
        return client.get(path, params={PATIENT_PARAM: pour}, follow_redirects=False)
    form = {CSRF_FIELD: csrf, **(page.form or {}), PATIENT_PARAM: pour}
    return client.post(path, data=form, follow_redirects=False)


def test_acting_for_someone_one_does_not_represent_answers_like_a_missing_record(
    matrix: Matrix,
) -> None:
    pages = _acting_for_pages(matrix.app)
    assert len(pages) > 5  # the controls, history, alerts and data pages take ``pour``
    child = matrix.ids["child"]
    wrong = []
    for method, template in pages:
        page = TABLE[(method, template)]
        path = _path(matrix, template, page.params)
        client, csrf = _client(matrix, "representative")
        if page.expected["patient"] == SERVED and not page.params:  # not an item of the patient
            got = _outcome(_call_for(client, csrf, method, path, page, child))
            if got != SERVED:
                wrong.append(f"{method} {template} as the representative: {got}")
        for caller in ("patient", "other_patient"):
            client, csrf = _client(matrix, caller)
            foreign = _call_for(client, csrf, method, path, page, child)
            missing = _call_for(client, csrf, method, path, page, MISSING_ID)
            if foreign.status_code != 404 or foreign.text != missing.text:
                wrong.append(f"{method} {template} for another's child as {caller}")
    assert not wrong, "\n".join(wrong)


def test_a_representative_opens_the_controls_of_a_document_of_the_person_represented(
    matrix: Matrix,
) -> None:
    """The other side of the kept document answering as missing: the child's other one opens."""
    client, _ = _client(matrix, "representative")
    page = client.get(f"/espace/controles/document/{matrix.ids['child_doc']}")
    assert page.status_code == 200
    assert "Carnet de vaccination" in page.text
