"""The demo's ready-made accounts: a patient, a legal representative, a GP, a nurse, a pharmacist
(who also hold the research hub's roles) and a SMART app, with the care relationships that make
their access realistic.

Idempotent: accounts and relationships are created once; each run re-enrols the persons' second
factor (the seed is stored encrypted and never shown again) and prints the new TOTP secrets.
Demo passwords and secrets are printed on purpose: this is synthetic data on a loopback server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyotp

from carnet.authn.clients import ClientService
from carnet.authn.oidc import DEMO_PROFESSIONALS
from carnet.authn.service import AccountService
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.fhir.service import FhirService
from carnet.hub.roles import OUTPUT_CHECKER, RESEARCHER, REVIEWER, Roles
from carnet.policy.controls import ControlsService
from carnet.policy.enforce import note_care
from carnet.record.service import RecordService

PATIENT_LOGIN = "patient.demo@carnet.test"
PARENT_LOGIN = "parent.demo@carnet.test"
DEMO_PASSWORD = "lanterne-olive-2026"  # noqa: S105 - printed on purpose for the synthetic demo
APP_CLIENT_ID = "demo-app"
DEMO_SYSTEM = "urn:carnet:demo"
APP_SCOPES = ("openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs")


# The hub's roles held by the demo professionals (an account id's roles; carnet/hub/roles.py).
HUB_ROLES = {"physician": RESEARCHER, "nurse": REVIEWER, "pharmacist": OUTPUT_CHECKER}
CODE_COMMAND = ".venv/bin/carnet demo-code"  # prints the current code of a secret


@dataclass(frozen=True)
class DemoAccount:
    """One ready-made account: what to type where, as printed by ``carnet demo``."""

    role: str
    login: str
    detail: str
    sign_in: str = ""  # the portal page to start from
    password: str | None = None
    totp_secret: str | None = None  # base32, for an authenticator app or CODE_COMMAND
    patient_id: str | None = None
    represented_id: str | None = None  # the child a representative acts for
    account_id: str | None = None


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
    roles: Roles | None = None,
    ctx: RequestContext,
) -> list[DemoAccount]:
    """Create (once) the demo accounts over the loaded population and describe them; with the
    hub's ``roles``, the demo professionals also hold the hub's roles (HUB_ROLES)."""
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
        secret = pyotp.parse_uri(accounts.enroll_totp(account_id)).secret
        represented = child if role == "representative" else None
        also = f"; parent of Patient/{child}" if represented else ""
        out.append(
            DemoAccount(
                role,
                login,
                f"sign in at {issuer_url}/connexion: password {DEMO_PASSWORD}, then the code of "
                f"TOTP secret {secret} (authenticator app, or "
                f"{CODE_COMMAND} {secret}); Patient/{pid}{also}",
                sign_in=f"{issuer_url}/connexion",
                password=DEMO_PASSWORD,
                totp_secret=secret,
                patient_id=pid,
                represented_id=represented,
                account_id=account_id,
            )
        )
    record.open_space(child, ctx=ctx)
    record.representatives.add(child, parent, "parent", ctx=ctx)
    gp, nurse, pharmacist = DEMO_PROFESSIONALS[0], DEMO_PROFESSIONALS[1], DEMO_PROFESSIONALS[2]
    for pro in (gp, nurse, pharmacist):
        found_pro = accounts.find_by_rpps(pro.rpps)
        pro_account = (
            found_pro.account_id
            if found_pro
            else accounts.create_professional(f"rpps-{pro.rpps}", None, pro.rpps, pro.profession)
        )
        with writing(fhir.repo.engine) as conn:
            note_care(conn, patient, pro.rpps, "declared")
        hub_role = HUB_ROLES[pro.profession] if roles is not None else None
        if roles is not None and hub_role is not None:
            roles.grant(pro_account, hub_role)
        out.append(
            DemoAccount(
                pro.profession,
                f"RPPS {pro.rpps}",
                f"sign in at {issuer_url}/auth/pro/login?next=/pro and pick "
                f'"{pro.label}" (built-in identity provider)'
                + (
                    f"; hub role {hub_role} (account {pro_account}), the hub's pages at "
                    f"{issuer_url}/auth/pro/login?next=/recherche"
                    if hub_role
                    else ""
                ),
                sign_in=f"{issuer_url}/auth/pro/login?next=/pro",
                account_id=pro_account,
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
