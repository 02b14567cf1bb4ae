"""What explains a professional's access, read from the store: an appointment or a care team of
the record naming them, the médecin traitant, a care team the patient declared; an encounter
of someone else explains nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.db.engine import writing
from carnet.policy.enforce import note_care
from carnet.watch.explain import RPPS_SYSTEM, EvidenceReader
from tests.support.caller import AS_LOCAL_OPERATOR

RPPS, OTHER_RPPS = "10003456789", "10009876543"


def _create(services: Services, body: dict[str, object]) -> str:
    return services.fhir.create(
        str(body["resourceType"]), body, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id


def _person(patient_id: str) -> RequestContext:
    return RequestContext(Principal(Kind.PERSON, f"acct-{patient_id}", patient_id=patient_id), "p")


def test_appointments_care_teams_and_declared_care_explain_and_others_encounters_do_not(
    sqlite_services: Services,
) -> None:
    s = sqlite_services
    mine = _create(
        s,
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": RPPS_SYSTEM, "value": f"8{RPPS}"}],
        },
    )
    other = _create(
        s,
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": RPPS_SYSTEM, "value": f"8{OTHER_RPPS}"}],
        },
    )
    p = {
        name: _create(s, {"resourceType": "Patient"})
        for name in ("appointment", "team", "traitant", "declared", "elsewhere")
    }
    today = date.today().isoformat()
    _create(
        s,
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": f"{today}T09:00:00Z",
            "end": f"{today}T09:30:00Z",
            "participant": [
                {"actor": {"reference": f"Patient/{p['appointment']}"}, "status": "accepted"},
                {"actor": {"reference": f"Practitioner/{mine}"}, "status": "accepted"},
            ],
        },
    )
    _create(
        s,
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{p['team']}"},
            "participant": [{"member": {"reference": f"Practitioner/{mine}"}}],
        },
    )
    _create(
        s,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{p['elsewhere']}"},
            "participant": [{"individual": {"reference": f"Practitioner/{other}"}}],
            "period": {"start": today, "end": today},
        },
    )
    pro = s.accounts.create_professional("dr.watch", None, RPPS, "physician")
    s.controls.declare_care(_person(p["traitant"]), None, RPPS, medecin_traitant=True)
    s.controls.declare_care(_person(p["declared"]), None, RPPS, medecin_traitant=False)
    with writing(s.engine) as conn:
        note_care(conn, p["elsewhere"], RPPS, "encounter")
    reader = EvidenceReader(s.engine, s.fhir, s.crypto.blind, s.settings.fhir_base_url)
    evidence = reader.read({(pro, pid) for pid in p.values()}, {date.today()})
    now = datetime.now(UTC).replace(hour=9, minute=15)
    found = {name: evidence.explanation(pro, pid, now) for name, pid in p.items()}
    assert found == {
        "appointment": "appointment",
        "team": "care-team",
        "traitant": "medecin-traitant",
        "declared": "care-team",
        "elsewhere": None,
    }
