"""The portal's authorisation table: every page the portal mounts, how to call it (path
parameters named after items of the test world, a POST's fields) and what each kind of caller
meets there: the sign-in redirect, the 403 page, the 404 page of a missing item, or the page.

Data, read by tests/functional/web/test_page_authorisation_matrix.py, which fails for a page
mounted and missing here. Kept apart from the checks so the table reads as the rule it is.
"""

from __future__ import annotations

from dataclasses import dataclass

# The callers, in the order of every row below.
CALLERS = (
    "anonymous",
    "patient",
    "other_patient",
    "representative",
    "pro_stranger",
    "pro_blocked",
    "pro_caring",
    "operator",
)
# What a caller meets: the sign-in redirect, the 403 page, the page of a missing item, the page.
SIGN_IN, FORBIDDEN, MISSING, SERVED = "sign-in", "403", "404", "served"


def _row(*outcomes: str) -> dict[str, str]:
    assert len(outcomes) == len(CALLERS)
    return dict(zip(CALLERS, outcomes, strict=True))


PUBLIC = _row(*[SERVED] * len(CALLERS))
SIGNED_IN = _row(SIGN_IN, *[SERVED] * (len(CALLERS) - 1))
# A person's own pages (their record, their controls): every person, never a professional.
PERSONS = _row(SIGN_IN, SERVED, SERVED, SERVED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)
# An item of the patient's record (a document, an entry of their history): theirs alone.
PATIENTS_ITEM = _row(SIGN_IN, SERVED, MISSING, MISSING, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)
# The record of the child the representative represents.
REPRESENTED = _row(SIGN_IN, MISSING, MISSING, SERVED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)
# The professionals' workspace: every professional, never a person.
PROS = _row(SIGN_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, SERVED, SERVED, SERVED, FORBIDDEN)
# The patient's record in the workspace: the caring professional; the blocked one meets a missing
# record, as does one without a care relationship (emergency access is its own form).
PROS_RECORD = _row(SIGN_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, MISSING, MISSING, SERVED, FORBIDDEN)
# The research hub's members' pages (carnet/web/hub): only accounts the operator gave a hub role,
# which none of these callers holds (tests/functional/web/test_hub_pages.py serves them by role).
HUB_MEMBERS = _row(SIGN_IN, *[FORBIDDEN] * (len(CALLERS) - 1))
# The security officer's queue: an operator holding the role, which no caller here holds (the
# operator included); tests/functional/web/test_watch_pages.py serves it to an officer.
OFFICER = _row(SIGN_IN, *[FORBIDDEN] * (len(CALLERS) - 1))


# A document hidden from the patient by a professional; a minor's kept from their representative.
KEPT_FROM_THEM = (("patient", {"doc_id": "hidden"}), ("representative", {"doc_id": "child_kept"}))


@dataclass(frozen=True)
class Page:
    """How to call one route (path parameters by name, from the world) and what callers get."""

    expected: dict[str, str]
    params: dict[str, str]
    # The same route on items hidden from a caller (caller, parameters): answers as missing.
    hidden: tuple[tuple[str, dict[str, str]], ...] = ()
    form: dict[str, str] | None = None  # a POST's fields (a harmless, valid choice)

    def expects(self, method: str, caller: str) -> str:
        """A form posted without a session is refused (403), not redirected: there is no token
        it could carry (carnet/web/caller.py)."""
        outcome = self.expected[caller]
        return FORBIDDEN if method == "POST" and outcome == SIGN_IN else outcome


def _table() -> dict[tuple[str, str], Page]:
    patient_doc = {"doc_id": "consult"}
    pro_doc = {"patient_id": "patient", "document_id": "consult"}
    on_patient = {"patient_id": "patient"}
    event = {"event_id": "event"}
    declared = {"slug": "=allergies", "item_id": "declared"}  # an allergy the patient declared
    # the world's allergy, written by care: not the profile's to edit or delete
    care_written = (("patient", {"slug": "=allergies", "item_id": "care_allergy"}),)
    return {
        ("GET", "/"): Page(PUBLIC, {}),
        ("GET", "/langue/{code}"): Page(PUBLIC, {"code": "=en"}),
        ("GET", "/registre"): Page(PUBLIC, {}),
        ("GET", "/connexion"): Page(PUBLIC, {}),
        ("POST", "/connexion"): Page(PUBLIC, {}),
        ("GET", "/connexion/code"): Page(PUBLIC, {}),
        ("POST", "/connexion/code"): Page(PUBLIC, {}),
        ("GET", "/activation"): Page(PUBLIC, {}),
        ("POST", "/activation"): Page(PUBLIC, {}),
        ("POST", "/activation/compte"): Page(PUBLIC, {}),
        ("POST", "/activation/verification"): Page(PUBLIC, {}),
        ("POST", "/activation/opposition"): Page(PUBLIC, {}),
        ("POST", "/activation/reprise"): Page(PUBLIC, {}),
        ("GET", "/mot-de-passe-oublie"): Page(PUBLIC, {}),
        ("POST", "/mot-de-passe-oublie"): Page(PUBLIC, {}),
        ("POST", "/mot-de-passe-oublie/nouveau"): Page(PUBLIC, {}),
        ("POST", "/deconnexion"): Page(SIGNED_IN, {}),
        ("GET", "/espace"): Page(PERSONS, {}),
        ("GET", "/dossier"): Page(PERSONS, {}),
        ("GET", "/dossier/synthese"): Page(PERSONS, {}),
        ("GET", "/dossier/mesures/{name}"): Page(PERSONS, {"name": "=poids"}),
        ("GET", "/dossier/depot"): Page(PERSONS, {}),
        ("POST", "/dossier/depot"): Page(PERSONS, {}),
        ("GET", "/dossier/documents/{doc_id}"): Page(
            PATIENTS_ITEM, patient_doc, hidden=(("patient", {"doc_id": "hidden"}),)
        ),
        ("GET", "/dossier/documents/{doc_id}/contenu"): Page(
            PATIENTS_ITEM, patient_doc, hidden=(("patient", {"doc_id": "hidden"}),)
        ),
        ("GET", "/dossier/documents/{doc_id}/apercu"): Page(
            PATIENTS_ITEM, patient_doc, hidden=(("patient", {"doc_id": "hidden"}),)
        ),
        ("GET", "/espace/controles"): Page(PERSONS, {}),
        ("GET", "/espace/controles/document/{doc_id}"): Page(
            PATIENTS_ITEM, patient_doc, hidden=KEPT_FROM_THEM
        ),
        ("POST", "/espace/controles/document/{doc_id}"): Page(
            PATIENTS_ITEM,
            patient_doc,
            hidden=KEPT_FROM_THEM,
            form={"choice": "demasquer"},
        ),
        ("POST", "/espace/controles/blocage"): Page(PERSONS, {}),
        ("POST", "/espace/controles/preferences"): Page(
            PERSONS, {}, form={"section": "recherche", "research_optout": "0"}
        ),
        ("GET", "/espace/historique"): Page(PERSONS, {}),
        ("GET", "/espace/recherche"): Page(PERSONS, {}),  # the projects that used my data
        ("GET", "/espace/historique.csv"): Page(PERSONS, {}),
        ("GET", "/espace/historique/{event_id}"): Page(PATIENTS_ITEM, event),
        ("GET", "/espace/historique/{event_id}/preuve"): Page(PATIENTS_ITEM, event),
        ("GET", "/espace/alertes"): Page(PERSONS, {}),
        ("POST", "/espace/alertes"): Page(PERSONS, {}),
        ("GET", "/espace/representants"): Page(PERSONS, {}),
        ("GET", "/espace/representants/{patient_id}"): Page(REPRESENTED, {"patient_id": "child"}),
        ("GET", "/espace/mes-donnees"): Page(PERSONS, {}),
        ("GET", "/espace/mes-donnees/dossier.zip"): Page(PERSONS, {}),
        ("POST", "/espace/mes-donnees/fermeture"): Page(PERSONS, {}),
        # the medical profile (carnet/web/profile): kinds, and the patient's declared items
        ("GET", "/espace/profil"): Page(PERSONS, {}),
        ("GET", "/espace/profil/{slug}/ajout"): Page(PERSONS, {"slug": "=allergies"}),
        ("POST", "/espace/profil/{slug}/ajout"): Page(PERSONS, {"slug": "=allergies"}),
        ("GET", "/espace/profil/{slug}/{item_id}"): Page(
            PATIENTS_ITEM, declared, hidden=care_written
        ),
        ("POST", "/espace/profil/{slug}/{item_id}"): Page(
            PATIENTS_ITEM, declared, hidden=care_written
        ),
        ("GET", "/espace/profil/{slug}/{item_id}/suppression"): Page(
            PATIENTS_ITEM, declared, hidden=care_written
        ),
        ("POST", "/espace/profil/{slug}/{item_id}/suppression"): Page(
            PATIENTS_ITEM, {**declared, "item_id": "declared_spare"}, hidden=care_written
        ),
        ("GET", "/pro"): Page(PROS, {}),
        ("POST", "/pro"): Page(PROS, {}),
        ("POST", "/pro/urgence"): Page(PROS, {}),
        ("GET", "/pro/patients/{patient_id}"): Page(PROS_RECORD, on_patient),
        ("POST", "/pro/patients/{patient_id}/recherche"): Page(
            PROS_RECORD, on_patient, form={"q": "glycémie"}
        ),
        ("GET", "/pro/patients/{patient_id}/depot"): Page(PROS_RECORD, on_patient),
        ("POST", "/pro/patients/{patient_id}/depot"): Page(PROS_RECORD, on_patient),
        ("GET", "/securite/alertes"): Page(OFFICER, {}),
        ("GET", "/securite/alertes/{alert_id}"): Page(OFFICER, {"alert_id": "=some-alert"}),
        ("POST", "/securite/alertes/{alert_id}"): Page(
            OFFICER, {"alert_id": "=some-alert"}, form={"outcome": "legitimate"}
        ),
        ("GET", "/pro/patients/{patient_id}/documents/{document_id}"): Page(
            PROS_RECORD,
            pro_doc,
            hidden=(
                ("pro_caring", {**pro_doc, "document_id": "masked"}),  # masked from professionals
                ("pro_caring", {**pro_doc, "document_id": "foreign"}),  # another patient's
            ),
        ),
        ("GET", "/recherche"): Page(HUB_MEMBERS, {}),
        ("GET", "/recherche/demande"): Page(HUB_MEMBERS, {}),
        ("POST", "/recherche/demande"): Page(HUB_MEMBERS, {}),
        ("GET", "/recherche/projets/{permit_id}"): Page(HUB_MEMBERS, {"permit_id": "=p"}),
        ("POST", "/recherche/projets/{permit_id}/etapes/{step}"): Page(
            HUB_MEMBERS, {"permit_id": "=p", "step": "=soumettre"}
        ),
        ("POST", "/recherche/projets/{permit_id}/requete"): Page(
            HUB_MEMBERS, {"permit_id": "=p"}, form={"sql": "SELECT 1"}
        ),
        ("POST", "/recherche/projets/{permit_id}/diffusions"): Page(
            HUB_MEMBERS, {"permit_id": "=p"}
        ),
        ("POST", "/recherche/projets/{permit_id}/resultats"): Page(
            HUB_MEMBERS, {"permit_id": "=p"}
        ),
        ("GET", "/recherche/instruction"): Page(HUB_MEMBERS, {}),
        ("GET", "/recherche/instruction/{permit_id}"): Page(HUB_MEMBERS, {"permit_id": "=p"}),
        ("POST", "/recherche/instruction/{permit_id}"): Page(HUB_MEMBERS, {"permit_id": "=p"}),
        ("GET", "/recherche/controle"): Page(HUB_MEMBERS, {}),
        ("GET", "/recherche/controle/{release_id}"): Page(HUB_MEMBERS, {"release_id": "=r"}),
        ("POST", "/recherche/controle/{release_id}"): Page(
            HUB_MEMBERS, {"release_id": "=r"}, form={"decision": "approve"}
        ),
        ("GET", "/recherche/controle/{release_id}/results.json"): Page(
            HUB_MEMBERS, {"release_id": "=r"}
        ),
        ("GET", "/recherche/controle/{release_id}/sacro.zip"): Page(
            HUB_MEMBERS, {"release_id": "=r"}
        ),
    }


TABLE = _table()
