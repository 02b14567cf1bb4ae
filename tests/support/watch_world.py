"""A small record world for the watch's tests: a physician (RPPS, name and address in a
Practitioner), a patient an encounter explains, the physician's namesake at the same address
(no encounter, alerts chosen), and a stranger in care without an encounter; the physician has
read all three records, so the audit log holds the accesses a scan reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.db.instants import stamp
from carnet.policy.enforce import note_care
from carnet.record.models import record_alert_choice
from carnet.watch.explain import RPPS_SYSTEM
from tests.support.caller import AS_LOCAL_OPERATOR

RPPS = "10003456789"
SURNAME, STREET = "Lefèvre", "12 rue des Lilas"  # what must never leave the store in clear


@dataclass(frozen=True)
class WatchWorld:
    pro: str  # the physician's account
    explained: str
    relative: str
    stranger: str


def _create(services: Services, body: dict[str, Any]) -> str:
    return services.fhir.create(body["resourceType"], body, ctx=AS_LOCAL_OPERATOR).stored.res_id


def _patient(services: Services, family: str, line: str) -> str:
    return _create(
        services,
        {
            "resourceType": "Patient",
            "name": [{"use": "official", "family": family, "given": ["Camille"]}],
            "address": [{"line": [line], "postalCode": "69003", "city": "Lyon"}],
        },
    )


def build_watch_world(services: Services) -> WatchWorld:
    practitioner = _create(
        services,
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": RPPS_SYSTEM, "value": f"8{RPPS}"}],
            "name": [{"family": SURNAME}],
            "address": [{"line": [STREET], "postalCode": "69003", "city": "Lyon"}],
        },
    )
    explained = _patient(services, "Martin", "3 avenue Foch")
    relative = _patient(services, "LEFEVRE", "12, rue des lilas")
    stranger = _patient(services, "Bernard", "40 quai Perrache")
    _create(
        services,
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"code": "IMP"},
            "subject": {"reference": f"Patient/{explained}"},
            "participant": [{"individual": {"reference": f"Practitioner/{practitioner}"}}],
            "period": {"start": date.today().isoformat()},
        },
    )
    pro = services.accounts.create_professional("dr.lefevre", None, RPPS, "physician")
    with writing(services.engine) as conn:
        for pid in (explained, relative, stranger):
            note_care(conn, pid, RPPS, "encounter")
        conn.execute(
            insert(record_alert_choice).values(
                patient_id=relative, first_access=True, new_document=False, updated_at=stamp()
            )
        )
    as_pro = RequestContext(
        Principal(Kind.PROFESSIONAL, pro, rpps=RPPS, profession="physician"), pro
    )
    for pid in (explained, relative, stranger):
        services.fhir.read("Patient", pid, ctx=as_pro)
    return WatchWorld(pro, explained, relative, stranger)
