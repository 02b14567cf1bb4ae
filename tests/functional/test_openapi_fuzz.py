"""schemathesis against the app's own OpenAPI schema, in-process over ASGI (no socket), with valid
tokens: an operator's (system/*.*), a person's (their own record) and a professional's (with a
care relationship). No request may end in a 5xx; a response whose status the schema documents must
match its schema there; every FHIR error must be an OperationOutcome in application/fhir+json.

The schema FastAPI generates documents only 200 and 422 in application/json, while the FHIR API
answers 201, 204, 400-412 in application/fhir+json, so schemathesis' status-code and content-type
conformance checks would fail on nearly every operation: they are left out until the routers
declare their responses (reported with this file).

SQLite only, and bounded (few examples per operation, derandomised: the same cases every run);
CARNET_TEST_FUZZ_EXAMPLES raises the count for a deeper run by hand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance

from carnet.app import Services, build_services, create_app
from carnet.authn.guard import allowed
from carnet.authn.oidc import ProfessionalLogin
from carnet.authn.routes import ROUTE_GUARDS, Guard
from carnet.caller import Kind, Principal
from carnet.policy.enforce import note_care
from tests.conftest import make_settings
from tests.spec.helpers import observation, patient
from tests.support.auth import TEST_OPERATOR, bearer
from tests.support.caller import AS_LOCAL_OPERATOR
from tests.support.migrated_store import SqliteTemplate
from tests.support.shared_store import shared_services


@pytest.fixture(params=["operator", "person", "professional"])
def caller(request: pytest.FixtureRequest) -> str:
    return str(request.param)


RPPS = "10000000001"


@dataclass
class Target:
    schema: BaseSchema
    principal: Principal
    headers: dict[str, str]

    def reaches(self, path: str) -> bool:
        """Whether this caller gets past the endpoint's guard. Refusals there are the
        authorisation matrix's business; public endpoints ignore the caller, so they are
        fuzzed in the operator's run only."""
        guard = ROUTE_GUARDS.get(path)
        if guard is None:
            return True  # the typed /fhir/Patient, /fhir/Observation... added below
        if guard is Guard.PUBLIC:
            return self.principal.kind is Kind.OPERATOR
        return allowed(guard, self.principal)


@pytest.fixture
def dev_idp_services(tmp_path: Path, migrated_sqlite: SqliteTemplate) -> Iterator[Services]:
    """SQLite services with the development identity provider on (the professionals' login), on
    a copy of the session's migrated store (each caller's run writes its own)."""
    migrated_sqlite.copy_into(tmp_path / "data")
    settings = make_settings(tmp_path / "data").with_(dev_idp=True)
    built = build_services(settings, migrate=False)
    yield built
    built.close()


@pytest.fixture
def target(dev_idp_services: Services, caller: str) -> Iterator[Target]:
    s = dev_idp_services
    pid = s.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    oid = s.fhir.create("Observation", observation(pid), ctx=AS_LOCAL_OPERATOR).stored.res_id
    with s.engine.begin() as conn:
        note_care(conn, pid, RPPS, "declared")
    principal = {
        "operator": TEST_OPERATOR,
        "person": Principal(Kind.PERSON, "acct-fuzz", patient_id=pid),
        "professional": Principal(Kind.PROFESSIONAL, "pro-fuzz", rpps=RPPS, profession="physician"),
    }[caller]
    # The professionals' login reaches the built-in identity provider in process (as in
    # tests/support/oauth.py), not over a socket to wherever issuer_url points: an app over the
    # same services serves it to the fuzzed app's login.
    idp_app = create_app(s.settings, s)
    with TestClient(idp_app, base_url=s.settings.issuer_url) as idp:
        in_process = ProfessionalLogin(s.settings, idp, s.tickets, s.audit)
        app = create_app(s.settings, replace(s, pro_login=in_process))
        schema = schemathesis.openapi.from_dict(deepened(app.openapi(), [pid, oid]))
        schema.app = app
        yield Target(schema, principal, bearer(s, principal))


# -- a deeper schema ------------------------------------------------------------------------------
# The FHIR routes read their query string and body themselves, so FastAPI's schema declares only
# path parameters: fuzzing it as is would mostly answer 404 for random resource types. The copy
# fuzzed here names real types and ids (and a few wrong ones), and adds the usual search
# parameters (any string) and FHIR bodies.
TYPES = ["Patient", "Observation", "Condition", "Encounter", "DocumentReference", "Binary"]
SEARCH = [
    "_id", "_count", "_offset", "_sort", "_summary", "_elements", "_total", "_include",
    "_revinclude", "_lastUpdated", "_since", "_type", "_format", "patient", "subject",
    "subject:Patient._id", "_has:Observation:subject:code", "code", "code:text", "date",
    "status", "name", "name:exact", "birthdate", "gender", "identifier", "value-quantity",
]  # fmt: skip
WRONG = ["NoSuchType", "patient", "..", "%00", "\u00e9t\u00e9", "x" * 300]
PATH_VALUES = {
    "res_type": TYPES + WRONG[:2],
    "version": ["1", "2", "0", "-1", "99999999999999999999", "\u00b2", "\u0663", "x"],
}
HEADER_VALUES = {
    "prefer": ["return=representation", "return=minimal", "return=OperationOutcome",
               "handling=strict", "handling=lenient", "respond-async", "return=", "x"],
    "if-match": ['W/"1"', '"1"', 'W/"2"', 'W/"99999999999999999999"', 'W/"x"', "*", ""],
    "if-none-exist": ["identifier=x|y", "_id=x", "name=Dupont", "birthdate=lt2000", "",
                      "date=notadate", "nope=1", "_count=x", "&&", "code:below=1"],
}  # fmt: skip


PREFIX = "(eq|ne|gt|lt|ge|le|sa|eb|ap)?"
SHAPED = {
    # integers of any size and sign
    "_count": {"type": "integer"},
    "_offset": {"type": "integer"},
    # dates and instants, well or badly formed
    "date": {"type": "string", "pattern": f"^{PREFIX}[0-9]{{1,5}}(-[0-9]{{1,2}}){{0,2}}(T[0-9:.]{{0,12}}(Z|[+-][0-9:]{{1,5}})?)?$"},
    "quantity": {"type": "string", "pattern": f"^{PREFIX}-?[0-9.eE+]{{1,12}}(\\|[a-z:/.]{{0,12}}\\|[a-z]{{0,4}})?$"},
}  # fmt: skip
SHAPE_OF = {
    "_count": "_count", "_offset": "_offset", "date": "date", "birthdate": "date",
    "_lastUpdated": "date", "_since": "date", "value-quantity": "quantity",
}  # fmt: skip


def _search_value(name: str) -> dict[str, Any]:
    """Any string, or for numbers, dates and quantities something shaped like one."""
    shape = SHAPE_OF.get(name)
    if shape is None:
        return {"type": "string"}
    return {"anyOf": [SHAPED[shape], {"type": "string", "maxLength": 3}]}


AUTH_FIELDS: dict[str, Any] = {
    name: {"type": "string"}
    for name in ("client_id", "client_secret", "code", "code_verifier", "code_challenge",
                 "redirect_uri", "refresh_token", "token", "ticket", "state", "nonce", "login",
                 "password", "rpps", "next", "aud", "error")
} | {
    "grant_type": {"enum": ["authorization_code", "refresh_token", "client_credentials",
                            "password", ""]},
    "response_type": {"enum": ["code", "token", ""]},
    "code_challenge_method": {"enum": ["S256", "plain", ""]},
    "scope": {"enum": ["openid", "launch/patient patient/*.rs", "system/*.*", "user/*.cruds",
                       "patient/Observation.rs?category=x", ""]},
    "decision": {"enum": ["approve", "deny"]},
    "client_assertion_type": {"enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]},
    "client_assertion": {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,20}(\\.[A-Za-z0-9_-]{0,20}){2}$"},
}  # fmt: skip


def _resource(pid: str) -> dict[str, Any]:
    """A FHIR resource, often a plausible one: right type, real subject, valid or wrong values."""
    text = {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "resourceType": {"enum": [*TYPES, "Bundle", "Nope"]},
            "id": text,
            "status": {"enum": ["final", "active", "amended", "not-a-status"]},
            "gender": {"enum": ["female", "male", "f"]},
            "birthDate": {"enum": ["1980-05-17", "2026-13-40", "1980"]},
            "effectiveDateTime": text,
            "subject": {"type": "object", "properties": {
                "reference": {"enum": [f"Patient/{pid}", "Patient/none", "", "Patient/"]}}},
            "code": {"type": "object", "properties": {"coding": {
                "type": "array", "maxItems": 2, "items": {
                    "type": "object", "properties": {"system": text, "code": text}}}}},
            "meta": {"type": "object", "properties": {"security": {"type": "array"}}},
        },
        "required": ["resourceType"],
    }  # fmt: skip


def _typed(res_type: str, pid: str) -> dict[str, Any]:
    """A Patient or an Observation that is often valid, so writes get past validation."""
    text = {"type": "string", "maxLength": 12}
    if res_type == "Patient":
        fields = {
            "gender": {"enum": ["female", "male", "other", "unknown"]},
            "birthDate": {"enum": ["1980-05-17", "2016-02-29", "1980", "2015-02-29"]},
            "name": {"type": "array", "maxItems": 2, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"family": text, "given": {"type": "array", "items": text}}}},
            "identifier": {"type": "array", "maxItems": 2, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"system": {"enum": ["urn:oid:1.2.250.1.213.1.4.8",
                                                    "urn:oid:1.2.250.1.213.1.4.10", "urn:x"]},
                               "value": {"enum": ["280057512345674", "1", ""]}}}},
        }  # fmt: skip
    else:
        fields = {
            "status": {"enum": ["final", "preliminary", "amended", "bogus"]},
            "code": {"type": "object", "additionalProperties": False, "required": ["coding"],
                     "properties": {"coding": {"type": "array", "minItems": 1, "maxItems": 2,
                         "items": {"type": "object", "additionalProperties": False, "properties": {
                             "system": {"enum": ["http://loinc.org", "urn:x"]},
                             "code": {"enum": ["8302-2", "99999-1", ""]}}}}}},
            "subject": {"type": "object", "additionalProperties": False, "properties": {
                "reference": {"enum": [f"Patient/{pid}", "Patient/none", "Patient/", "x"]}}},
            "effectiveDateTime": {"enum": ["2024-03-05", "2024-03-05T10:15:00+01:00",
                                           "2024-03-05T10:15", "yesterday"]},
            "valueQuantity": {"type": "object", "additionalProperties": False, "properties": {
                "value": {"type": "number"}, "unit": text}},
        }  # fmt: skip
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"resourceType": {"enum": [res_type]}, **fields},
        "required": ["resourceType", *(["status", "code"] if res_type == "Observation" else [])],
    }


def _bundle(pid: str) -> dict[str, Any]:
    entry = {
        "type": "object",
        "properties": {
            "fullUrl": {"type": "string"},
            "resource": {"anyOf": [_typed("Patient", pid), _typed("Observation", pid)]},
            "request": {"type": "object", "properties": {
                "method": {"enum": ["POST", "PUT", "DELETE", "GET", "PATCH"]},
                "url": {"enum": ["Patient", "Observation", f"Patient/{pid}", "Observation?code=x",
                                 "", "Nope/1"]}}},
        },
    }  # fmt: skip
    return {
        "type": "object",
        "properties": {
            "resourceType": {"enum": ["Bundle", "Patient"]},
            "type": {"enum": ["transaction", "batch", "collection", "searchset"]},
            "entry": {"type": "array", "maxItems": 3, "items": entry},
        },
        "required": ["resourceType", "type"],
    }


def _body(path: str, pid: str) -> dict[str, Any]:
    if path == "/fhir":
        return {"application/fhir+json": {"schema": _bundle(pid)}}
    if path.endswith("/_search"):
        fields = {n: _search_value(n) for n in SEARCH}
        form = {"type": "object", "properties": fields}
        return {"application/x-www-form-urlencoded": {"schema": form}}
    return {"application/fhir+json": {"schema": _resource(pid)}}


def deepened(raw: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """``raw`` with real values for path parameters, search parameters and FHIR bodies."""
    values = {**PATH_VALUES, "res_id": ids + WRONG, "patient_id": ids[:1] + WRONG}
    for path, operations in raw["paths"].items():
        if not path.startswith("/fhir"):
            continue
        for method, op in operations.items():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in values:
                    parameter["schema"] = {"enum": values[parameter["name"]]}
                if parameter["in"] == "header" and parameter["name"] in HEADER_VALUES:
                    parameter["schema"] = {"enum": HEADER_VALUES[parameter["name"]]}
            if method == "get" or path.endswith("/_search"):
                known = {p["name"] for p in op.get("parameters", [])}
                op.setdefault("parameters", []).extend(
                    {"name": n, "in": "query", "required": False, "schema": _search_value(n)}
                    for n in SEARCH
                    if n not in known
                )
            if method in ("post", "put") and "requestBody" not in op and "$" not in path:
                op["requestBody"] = {"required": True, "content": _body(path, ids[0])}
    # The login, OAuth and OpenID Connect endpoints read forms and query strings themselves.
    for path, operations in raw["paths"].items():
        if path.startswith(("/oauth/", "/auth/", "/dev-idp/")):
            for method, op in operations.items():
                if method == "get":
                    op.setdefault("parameters", []).extend(
                        {"name": n, "in": "query", "required": False, "schema": schema}
                        for n, schema in AUTH_FIELDS.items()
                    )
                elif "requestBody" not in op:
                    form = {"type": "object", "properties": AUTH_FIELDS}
                    content = {"application/x-www-form-urlencoded": {"schema": form}}
                    op["requestBody"] = {"required": True, "content": content}
    # The identity service reads a Patient too.
    for path in ("/identity/match", "/identity/resolve"):
        content = {"application/fhir+json": {"schema": _typed("Patient", ids[0])}}
        raw["paths"][path]["post"]["requestBody"] = {"required": True, "content": content}
    # Writes of each type at its own URL, with bodies of that type.
    generic = raw["paths"]["/fhir/{res_type}"]["post"]
    for res_type, res_id in (("Patient", ids[0]), ("Observation", ids[1])):
        content = {"application/fhir+json": {"schema": _typed(res_type, ids[0])}}
        body = {"required": True, "content": content}
        headers = [p for p in generic["parameters"] if p["in"] == "header"]
        raw["paths"][f"/fhir/{res_type}"] = {
            "post": {"operationId": f"create_{res_type}", "parameters": headers,
                     "requestBody": body, "responses": generic["responses"]},
        }  # fmt: skip
        schema = _typed(res_type, ids[0])
        schema["properties"]["id"] = {"enum": [res_id, "another-id"]}
        schema["required"].append("id")
        content = {"application/fhir+json": {"schema": schema}}
        put = {**raw["paths"]["/fhir/{res_type}/{res_id}"]["put"]}
        put["requestBody"] = {"required": True, "content": content}
        put["operationId"] = f"update_{res_type}"
        put["parameters"] = [p for p in put["parameters"] if p["in"] == "header"]
        raw["paths"][f"/fhir/{res_type}/{res_id}"] = {"put": put}
    return raw


def fhir_errors_are_operation_outcomes(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case[Any]
) -> bool | None:
    """The FHIR API answers every error with an OperationOutcome (DESIGN.md, Conventions)."""
    if response.status_code >= 400 and case.path.startswith("/fhir"):
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/fhir+json"), content_type
        body = response.json()
        assert body.get("resourceType") == "OperationOutcome", body
    return None


CHECKS = [not_a_server_error, response_schema_conformance, fhir_errors_are_operation_outcomes]
BOUNDS = settings(
    # 6 per operation and mode (was 12): every operation of every caller is still fuzzed, with
    # positive and negative data, in half the time; raise it for a deep run.
    max_examples=int(os.environ.get("CARNET_TEST_FUZZ_EXAMPLES", "6")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow  # schemathesis fuzzing
def test_no_server_error_and_no_schema_violation(target: Target) -> None:
    """Every operation, with positive then negative data; failures are gathered, not stopped at."""
    failures: list[str] = []
    operations = 0
    for result in target.schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if not target.reaches(operation.path):
            continue
        operations += 1
        # Negative data needs something to negate: path parameters and headers here are plain
        # strings (any value conforms), so only operations with a body get a negative run.
        modes = [GenerationMode.POSITIVE] + (
            [GenerationMode.NEGATIVE] if len(operation.body) else []
        )
        for mode in modes:

            @BOUNDS
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Case[Any]) -> None:
                case.call_and_validate(headers=target.headers, checks=CHECKS)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - gathered, reported below
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations > 25
    assert not failures, "\n\n".join(failures)


# -- what the fuzzer found, pinned ------------------------------------------------------------------


@dataclass
class Pinned:
    services: Services
    client: TestClient
    auth: dict[str, str]  # the operator's token, made once


@pytest.fixture(scope="module")
def pinned(request: pytest.FixtureRequest) -> Iterator[Pinned]:
    """One SQLite app for the pinned cases: each creates its own Patient and reads only that, or
    is refused and writes nothing."""
    with (
        shared_services(request, "sqlite") as s,
        TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client,
    ):
        yield Pinned(s, client, bearer(s, TEST_OPERATOR))


@pytest.mark.parametrize("version", ["99999999999999999999", "\u00b2", "\u0663", "1\u00b2"])
def test_a_version_id_that_is_no_small_ascii_number_is_not_found(
    pinned: Pinned, version: str
) -> None:
    """Once a 500: ``int`` of 20 digits overflows SQLite's INTEGER, and ``"²".isdigit()`` is
    true but ``int("²")`` fails (carnet/fhir/service.py, vread and If-Match)."""
    pid = pinned.services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    client, auth = pinned.client, pinned.auth
    r = client.get(f"/fhir/Patient/{pid}/_history/{version}", headers=auth)
    assert r.status_code == 404, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    body = {**patient(), "id": pid}
    etag = f'W/"{version}"'.encode()
    headers = {b"if-match": etag, b"content-type": b"application/fhir+json"}
    headers.update({k.encode(): v.encode() for k, v in auth.items()})
    r = client.put(f"/fhir/Patient/{pid}", json=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{pid}", headers=auth).json()["meta"]["versionId"] == "1"


BIG = "9" * 20  # past SQLite's INTEGER (2**63 - 1)


def test_a_huge_offset_or_count_is_an_empty_page(pinned: Pinned) -> None:
    """Once a 500 (OverflowError in the SQLite driver) on searches, histories and the audit log:
    an offset past any record is an empty page, a huge count the largest page."""
    pid = pinned.services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    client, auth = pinned.client, pinned.auth
    for path in (
        "/fhir/Patient",
        "/fhir/Patient/_history",
        "/fhir/_history",
        f"/fhir/Patient/{pid}/_history",
        f"/fhir/Patient/{pid}/$everything",
        f"/fhir/AuditEvent?patient={pid}",
    ):
        sep = "&" if "?" in path else "?"
        r = client.get(f"{path}{sep}_offset={BIG}", headers=auth)
        assert r.status_code == 200, (path, r.text)
        assert r.json().get("entry", []) == [], path
        for count in (BIG, f"-{BIG}"):
            r = client.get(f"{path}{sep}_count={count}", headers=auth)
            assert r.status_code == 200, (path, count, r.text)


def test_a_patient_of_the_wrong_shape_is_no_500_for_the_identity_service(
    sqlite_services: Services,
) -> None:
    """Once a 500 (AttributeError reading the traits, carnet/identity/decisions.py): names that
    are lists or numbers where the identity service expects objects are a 400; other odd elements
    are tolerated, never a 5xx."""
    s = sqlite_services
    official = [{"use": "official", "family": "A", "given": ["B"]}]
    base = {"resourceType": "Patient", "gender": "female", "birthDate": "1980-05-17"}
    malformed = [{**base, "name": [[[], [0.5, None]]]}, {**base, "name": [1]}]
    tolerated = [
        {**base, "name": official, "identifier": [[]], "extension": ["x"]},
        {**base, "name": official, "address": [None]},
    ]
    with TestClient(create_app(s.settings, s), base_url="http://127.0.0.1") as client:
        auth = {**bearer(s, TEST_OPERATOR), "Content-Type": "application/fhir+json"}
        for path in ("/identity/match", "/identity/resolve"):
            for body in malformed:
                r = client.post(path, json=body, headers=auth)
                assert r.status_code == 400, (path, body, r.text)
                assert r.json()["resourceType"] == "OperationOutcome"
            for body in tolerated:
                r = client.post(path, json=body, headers=auth)
                assert r.status_code < 500, (path, body, r.text)
        # A deposit of such a Patient is refused by validation (HumanName is an object).
        for body in malformed:
            r = client.post("/fhir/Patient", json=body, headers=auth)
            assert r.status_code == 422, (body, r.text)


@pytest.mark.parametrize("shape", [[1], "x", 1, [[]], [None]])
def test_an_element_of_the_wrong_shape_is_refused_by_validation(pinned: Pinned, shape: Any) -> None:
    """Once a 500 (carnet/fhir/repository.py reading meta): the FHIR JSON schema's complex types
    did not say "type": "object", so a list or a number passed for Meta, HumanName, Reference...
    (carnet/fhir/definitions.py now adds it)."""
    pid = pinned.services.fhir.create("Patient", patient(), ctx=AS_LOCAL_OPERATOR).stored.res_id
    client = pinned.client
    auth = {**pinned.auth, "Content-Type": "application/fhir+json"}
    for res_type, body, element in (
        ("Patient", patient(), "meta"),
        ("Patient", patient(), "name"),
        ("Observation", observation(pid), "meta"),
        ("Observation", observation(pid), "subject"),
        ("Observation", observation(pid), "code"),
    ):
        body[element] = shape if element != "name" else [shape]
        r = client.post(f"/fhir/{res_type}", json=body, headers=auth)
        assert r.status_code == 422, (res_type, element, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
