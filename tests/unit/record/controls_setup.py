"""A small record for the patient's-controls services: two patients, a document, a general
practitioner in the directory with an account and a care relationship, an emergency physician."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carnet.app import Services
from carnet.caller import Kind, Principal, RequestContext
from carnet.record.history import RPPS_SYSTEM
from tests.support.caller import AS_LOCAL_OPERATOR

GP, ER_DOCTOR, NURSE = "10000000011", "10000000052", "10000000029"


@dataclass
class Record:
    patient: str
    other: str
    doc: str
    as_patient: RequestContext
    as_other: RequestContext
    as_gp: RequestContext
    as_er: RequestContext
    gp_account: str


def _ctx(principal: Principal) -> RequestContext:
    return RequestContext(principal=principal, actor=principal.subject)


def document(patient: str, text: str = "Compte rendu") -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": {"contentType": "text/plain", "title": text}}],
    }


def practitioner(rpps: str, given: str, family: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": RPPS_SYSTEM, "value": rpps}],
        "name": [{"family": family, "given": [given], "prefix": ["Dr"]}],
    }


def small_record(services: Services) -> Record:
    fhir = services.fhir
    patient, other = (
        fhir.create(
            "Patient", {"resourceType": "Patient", "birthDate": born}, ctx=AS_LOCAL_OPERATOR
        ).stored.res_id
        for born in ("1970-01-01", "1971-01-01")
    )
    doc = fhir.create("DocumentReference", document(patient), ctx=AS_LOCAL_OPERATOR).stored.res_id
    fhir.create("Practitioner", practitioner(GP, "Jeanne", "Martin"), ctx=AS_LOCAL_OPERATOR)
    fhir.create("Practitioner", practitioner(ER_DOCTOR, "Paul", "Urgent"), ctx=AS_LOCAL_OPERATOR)
    accounts = services.accounts
    mine = accounts.create_person("patient@exemple.fr", "mot de passe long 1", patient)
    theirs = accounts.create_person("autre@exemple.fr", "mot de passe long 2", other)
    gp = accounts.create_professional("gp@exemple.fr", None, GP, "physician")
    er = accounts.create_professional("er@exemple.fr", None, ER_DOCTOR, "physician")
    record = Record(
        patient,
        other,
        doc,
        _ctx(accounts.principal_for(mine)),
        _ctx(accounts.principal_for(theirs)),
        _ctx(accounts.principal_for(gp)),
        _ctx(accounts.principal_for(er)),
        gp,
    )
    services.controls.declare_care(record.as_patient, None, GP, medecin_traitant=False)
    return record


def as_person(principal: Principal) -> RequestContext:
    assert principal.kind is Kind.PERSON
    return _ctx(principal)
