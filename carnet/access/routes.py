"""Which kind of caller may reach each HTTP endpoint (the coarse gate before the PDP).

``SIGNED_IN`` endpoints are open to every authenticated caller and decided per resource by the
policy decision point (the FHIR engine calls it on every read, write and search); the others are
reserved to one kind of caller. An endpoint missing from this table is refused, and the
authorisation matrix test (tests/functional/test_authorisation_matrix.py) fails until it is listed.
"""

from __future__ import annotations

from enum import StrEnum


class Guard(StrEnum):
    PUBLIC = "public"  # no credential: metadata, discovery, login and token endpoints
    SIGNED_IN = "signed-in"  # any authenticated caller; the PDP decides per resource
    PERSON = "person"  # a citizen (patient or representative): their own controls
    PROFESSIONAL = "professional"  # a health professional: break-glass
    OPERATOR = "operator"  # the operator: identity vigilance, administration


ROUTE_GUARDS: dict[str, Guard] = {
    "/": Guard.PUBLIC,
    "/fhir/metadata": Guard.PUBLIC,
    # the FHIR engine: every interaction goes through the PDP
    "/fhir": Guard.SIGNED_IN,
    "/fhir/_history": Guard.SIGNED_IN,
    "/fhir/{res_type}": Guard.SIGNED_IN,
    "/fhir/{res_type}/_search": Guard.SIGNED_IN,
    "/fhir/{res_type}/_history": Guard.SIGNED_IN,
    "/fhir/{res_type}/{res_id}": Guard.SIGNED_IN,
    "/fhir/{res_type}/{res_id}/_history": Guard.SIGNED_IN,
    "/fhir/{res_type}/{res_id}/_history/{version}": Guard.SIGNED_IN,
    "/fhir/Patient/{patient_id}/{res_type}": Guard.SIGNED_IN,
    "/fhir/Patient/{patient_id}/$everything": Guard.SIGNED_IN,
    "/fhir/Patient/{patient_id}/$summary": Guard.SIGNED_IN,
    # bulk data: the PDP allows system callers only
    "/fhir/$export": Guard.SIGNED_IN,
    "/fhir/Patient/$export": Guard.SIGNED_IN,
    "/fhir/Group/{group_id}/$export": Guard.SIGNED_IN,
    "/fhir/$export-status/{job_id}": Guard.SIGNED_IN,
    "/fhir/$export-file/{job_id}/{name}": Guard.SIGNED_IN,
    "/fhir/$import": Guard.SIGNED_IN,
    "/fhir/$import-status/{job_id}": Guard.SIGNED_IN,
    # the audit log: the patient, their representatives, operators (checked in carnet/audit/api.py)
    "/fhir/AuditEvent": Guard.SIGNED_IN,
    "/fhir/AuditEvent/{event_id}": Guard.SIGNED_IN,
    "/fhir/Patient/{patient_id}/$audit-export": Guard.SIGNED_IN,
    # identity vigilance
    "/identity/queue": Guard.OPERATOR,
    "/identity/queue/{item_id}/merge": Guard.OPERATOR,
    "/identity/queue/{item_id}/dismiss": Guard.OPERATOR,
    "/identity/merges/{merge_id}/unmerge": Guard.OPERATOR,
    "/identity/match": Guard.OPERATOR,
    "/identity/resolve": Guard.OPERATOR,
}
