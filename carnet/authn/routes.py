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
    # persons' login: these endpoints check their own cookies, CSRF and throttling
    "/auth/login": Guard.PUBLIC,
    "/auth/totp": Guard.PUBLIC,
    "/auth/logout": Guard.PUBLIC,
    "/auth/me": Guard.PUBLIC,
    # the personal space
    "/record/space": Guard.PERSON,
    "/record/objection": Guard.PERSON,
    "/record/closure": Guard.PERSON,
    # the patient's controls; the service checks who acts for whom
    "/access/controls": Guard.PERSON,
    "/access/masks": Guard.SIGNED_IN,  # persons mask; professionals set INVISIBLE_PATIENT
    "/access/masks/remove": Guard.SIGNED_IN,
    "/access/blocks": Guard.PERSON,
    "/access/blocks/{rpps}": Guard.PERSON,
    "/access/care": Guard.PERSON,
    "/access/care/{rpps}": Guard.PERSON,
    "/access/preferences": Guard.PERSON,
    "/access/break-glass": Guard.PROFESSIONAL,
    "/access/alerts": Guard.OPERATOR,
    # OAuth 2.0 / SMART and OpenID Connect: each handler checks the client, the session and its
    # signed ticket itself (the grant screen's plain HTML forms carry a ticket, not a CSRF header)
    "/.well-known/smart-configuration": Guard.PUBLIC,
    "/fhir/.well-known/smart-configuration": Guard.PUBLIC,
    "/.well-known/openid-configuration": Guard.PUBLIC,
    "/oauth/jwks": Guard.PUBLIC,
    "/oauth/authorize": Guard.PUBLIC,
    "/oauth/token": Guard.PUBLIC,
    "/oauth/revoke": Guard.PUBLIC,
    "/oauth/grants": Guard.PUBLIC,
    "/oauth/grants/revoke": Guard.PUBLIC,
    "/auth/pro/login": Guard.PUBLIC,
    "/auth/pro/callback": Guard.PUBLIC,
    "/dev-idp/.well-known/openid-configuration": Guard.PUBLIC,
    "/dev-idp/jwks": Guard.PUBLIC,
    "/dev-idp/authorize": Guard.PUBLIC,
    "/dev-idp/token": Guard.PUBLIC,
    # the portal's pages: each authenticates its caller itself (carnet/web/caller.py: a
    # redirect to sign-in, the CSRF field of every POST); listed here so none is left unguarded
    "/langue/{code}": Guard.PUBLIC,
    "/espace": Guard.PUBLIC,
    "/connexion": Guard.PUBLIC,
    "/connexion/code": Guard.PUBLIC,
    "/activation": Guard.PUBLIC,
    "/activation/compte": Guard.PUBLIC,
    "/activation/verification": Guard.PUBLIC,
    "/activation/opposition": Guard.PUBLIC,
    "/activation/reprise": Guard.PUBLIC,
    "/mot-de-passe-oublie": Guard.PUBLIC,
    "/mot-de-passe-oublie/nouveau": Guard.PUBLIC,
    "/dossier": Guard.PUBLIC,
    "/dossier/documents/{doc_id}": Guard.PUBLIC,
    "/dossier/documents/{doc_id}/contenu": Guard.PUBLIC,
    "/dossier/synthese": Guard.PUBLIC,
    "/dossier/mesures/{name}": Guard.PUBLIC,
    "/dossier/depot": Guard.PUBLIC,
    "/deconnexion": Guard.PUBLIC,
    # the research hub: the hub's services check roles, project membership and permit states
    "/hub/roles": Guard.OPERATOR,
    "/hub/permits": Guard.SIGNED_IN,
    "/hub/permits/{permit_id}": Guard.SIGNED_IN,
    "/hub/permits/{permit_id}/steps/{step}": Guard.SIGNED_IN,
    "/hub/permits/{permit_id}/results": Guard.SIGNED_IN,
    "/hub/permits/{permit_id}/query": Guard.SIGNED_IN,
    "/hub/permits/{permit_id}/releases": Guard.SIGNED_IN,
    "/hub/releases/{release_id}": Guard.SIGNED_IN,
    "/hub/releases/{release_id}/reviews": Guard.SIGNED_IN,
    "/hub/releases/{release_id}/results.json": Guard.SIGNED_IN,
    "/hub/releases/{release_id}/output": Guard.SIGNED_IN,
    "/hub/register": Guard.PUBLIC,  # the public register (EHDS art. 58): no sign-in
    "/hub/register.html": Guard.PUBLIC,
    "/hub/catalogue": Guard.PUBLIC,  # the catalogue: aggregates only (HealthDCAT-AP)
    "/hub/catalogue/{dataset_id}.jsonld": Guard.PUBLIC,
    "/hub/catalogue/{dataset_id}.ttl": Guard.PUBLIC,
    "/registre": Guard.PUBLIC,  # the research hub's public register page (carnet/web/hub)
    "/espace/recherche": Guard.PUBLIC,  # projects that used my data: the page authenticates
    # the patient's controls (carnet/web/patient_controls): pages, each authenticating itself
    "/espace/controles": Guard.PUBLIC,
    "/espace/controles/document/{doc_id}": Guard.PUBLIC,
    "/espace/controles/blocage": Guard.PUBLIC,
    "/espace/controles/preferences": Guard.PUBLIC,
    "/espace/historique": Guard.PUBLIC,
    "/espace/historique.csv": Guard.PUBLIC,
    "/espace/historique/{event_id}": Guard.PUBLIC,
    "/espace/historique/{event_id}/preuve": Guard.PUBLIC,
    "/espace/alertes": Guard.PUBLIC,
    "/espace/representants": Guard.PUBLIC,
    "/espace/representants/{patient_id}": Guard.PUBLIC,
    "/espace/mes-donnees": Guard.PUBLIC,
    "/espace/mes-donnees/dossier.zip": Guard.PUBLIC,
    "/espace/mes-donnees/fermeture": Guard.PUBLIC,
    # the professionals' workspace (carnet/web/pro)
    "/pro": Guard.PUBLIC,
    "/pro/urgence": Guard.PUBLIC,
    "/pro/patients/{patient_id}": Guard.PUBLIC,
    "/pro/patients/{patient_id}/recherche": Guard.PUBLIC,
    "/pro/patients/{patient_id}/documents/{document_id}": Guard.PUBLIC,
    "/pro/patients/{patient_id}/depot": Guard.PUBLIC,
    # the patient's medical profile (carnet/web/profile): pages, each authenticating itself
    "/espace/profil": Guard.PUBLIC,
    "/espace/profil/{slug}/ajout": Guard.PUBLIC,
    "/espace/profil/{slug}/{item_id}": Guard.PUBLIC,
    "/espace/profil/{slug}/{item_id}/suppression": Guard.PUBLIC,
    "/dossier/documents/{doc_id}/apercu": Guard.PUBLIC,  # a PDF's pages for the sandboxed frame
    # the research hub's members' pages (carnet/web/hub): each authenticates its caller and role
    "/recherche": Guard.PUBLIC,
    "/recherche/demande": Guard.PUBLIC,
    "/recherche/projets/{permit_id}": Guard.PUBLIC,
    "/recherche/projets/{permit_id}/etapes/{step}": Guard.PUBLIC,
    "/recherche/projets/{permit_id}/requete": Guard.PUBLIC,
    "/recherche/projets/{permit_id}/diffusions": Guard.PUBLIC,
    "/recherche/projets/{permit_id}/resultats": Guard.PUBLIC,
    "/recherche/instruction": Guard.PUBLIC,
    "/recherche/instruction/{permit_id}": Guard.PUBLIC,
    "/recherche/controle": Guard.PUBLIC,
    "/recherche/controle/{release_id}": Guard.PUBLIC,
    "/recherche/controle/{release_id}/results.json": Guard.PUBLIC,
    "/recherche/controle/{release_id}/sacro.zip": Guard.PUBLIC,
    # the security officer's alert queue (carnet/web/watch): an operator with the role
    "/securite/alertes": Guard.PUBLIC,
    "/securite/alertes/{alert_id}": Guard.PUBLIC,
}
