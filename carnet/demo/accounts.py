"""The demo's ready-made accounts: a patient, a legal representative, a GP, a nurse, a pharmacist
and a SMART app, with the care relationships that make their access realistic.

Idempotent: accounts and relationships are created once; each run re-enrols the persons' second
factor (the seed is stored encrypted and never shown again) and prints the new otpauth URIs.
Demo passwords are printed on purpose: this is synthetic data on a loopback server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from carnet.authn.clients import ClientService
from carnet.authn.oidc import DEMO_PROFESSIONALS
from carnet.authn.service import AccountService
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.fhir.service import FhirService
from carnet.policy.controls import ControlsService
from carnet.policy.enforce import note_care
from carnet.record.service import RecordService

PATIENT_LOGIN = "patient.demo@carnet.test"
PARENT_LOGIN = "parent.demo@carnet.test"
DEMO_PASSWORD = "lanterne-olive-2026"  # noqa: S105 - printed on purpose for the synthetic demo
APP_CLIENT_ID = "demo-app"
DEMO_SYSTEM = "urn:carnet:demo"
APP_SCOPES = ("openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs")


@dataclass(frozen=True)
class DemoAccount:
    role: str
    login: str
    detail: str


def _find_patient(
    fhir: FhirService, params: list[tuple[str, str]], ctx: RequestContext
) -> str | None:
    bundle = fhir.search("", "Patient", [*params, ("_count", "1"), ("_sort", "_id")], ctx=ctx)
    entries = bundle.get("entry", [])
    return str(entries[0]["resource"]["id"]) if entries else None


def _child_of(fhir: FhirService, parent: str, birth: date, ctx: RequestContext) -> str:
    """A synthetic child of ``parent`` (the generated population has adults only); created once."""
    body = fhir.read("Patient", parent, ctx=ctx).body or {}
    family = next((n.get("family") for n in body.get("name", []) if n.get("family")), "DEMO")
    child = {
        "resourceType": "Patient",
        "identifier": [{"system": DEMO_SYSTEM, "value": f"child-of-{parent}"}],
        "name": [{"use": "official", "family": family, "given": ["Léa"]}],
        "gender": "female",
        "birthDate": birth.isoformat(),
    }
    query = f"identifier={DEMO_SYSTEM}|child-of-{parent}"
    return fhir.create("Patient", child, if_none_exist=query, ctx=ctx).stored.res_id


def create_demo_accounts(
    fhir: FhirService,
    accounts: AccountService,
    clients: ClientService,
    controls: ControlsService,
    record: RecordService,
    *,
    issuer_url: str,
    today: date | None = None,
    ctx: RequestContext,
) -> list[DemoAccount]:
    """Create (once) the demo accounts over the loaded population and describe them."""
    today = today or datetime.now(UTC).date()
    adult_before = f"le{today.year - 30}-01-01"
    patient = _find_patient(fhir, [("birthdate", adult_before), ("gender", "female")], ctx)
    parent = _find_patient(fhir, [("birthdate", adult_before), ("gender", "male")], ctx)
    if patient is None or parent is None:
        return []
    child = _child_of(fhir, parent, date(today.year - 8, 3, 14), ctx)
    out: list[DemoAccount] = []
    for login, pid, role in (
        (PATIENT_LOGIN, patient, "patient"),
        (PARENT_LOGIN, parent, "representative"),
    ):
        found = accounts.find_by_login(login)
        account_id = (
            found.account_id if found else accounts.create_person(login, DEMO_PASSWORD, pid)
        )
        record.open_space(pid, ctx=ctx)
        totp = accounts.enroll_totp(account_id)
        out.append(
            DemoAccount(
                role, login, f"password {DEMO_PASSWORD}, Patient/{pid}, second factor {totp}"
            )
        )
    record.open_space(child, ctx=ctx)
    record.representatives.add(child, parent, "parent", ctx=ctx)
    out[-1] = DemoAccount(
        out[-1].role, out[-1].login, out[-1].detail + f"; parent of Patient/{child}"
    )
    gp, nurse, pharmacist = DEMO_PROFESSIONALS[0], DEMO_PROFESSIONALS[1], DEMO_PROFESSIONALS[2]
    for pro in (gp, nurse, pharmacist):
        if accounts.find_by_rpps(pro.rpps) is None:
            accounts.create_professional(f"rpps-{pro.rpps}", None, pro.rpps, pro.profession)
        with writing(fhir.repo.engine) as conn:
            note_care(conn, patient, pro.rpps, "declared")
        out.append(
            DemoAccount(
                pro.profession,
                f"RPPS {pro.rpps}",
                f"log in at {issuer_url}/auth/pro/login (built-in identity provider)",
            )
        )
    as_patient = RequestContext(
        actor="demo", principal=Principal(Kind.PERSON, "demo", patient_id=patient)
    )
    controls.declare_care(as_patient, None, gp.rpps, medecin_traitant=True)
    as_parent = RequestContext(
        actor="demo", principal=Principal(Kind.PERSON, "demo", patient_id=parent)
    )
    controls.declare_care(as_parent, child, gp.rpps, medecin_traitant=True)
    if clients.get(APP_CLIENT_ID) is None:
        clients.register(
            "Carnet demo app",
            "public",
            APP_SCOPES,
            redirect_uris=["http://127.0.0.1:8000/demo-app/callback"],
            client_id=APP_CLIENT_ID,
        )
    out.append(
        DemoAccount(
            "app",
            APP_CLIENT_ID,
            f"public SMART client (PKCE), scopes {' '.join(APP_SCOPES)}, "
            f"authorize at {issuer_url}/oauth/authorize",
        )
    )
    return out
