"""The kinds of the profile that are about the person's wishes and people: advance directives
(a DocumentReference of LOINC type 42348-3, uploaded), the position on organ donation (an
Observation, LOINC 75781-5), people to contact (RelatedPerson) and "my professionals" (a
CareTeam per professional). None of them gives anyone a right on the record: representatives
and care relationships are kept by the record and the policy, never read from these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carnet.web.i18n import N_
from carnet.web.profile.fields import Field, Message
from carnet.web.profile.kind import (
    JSON,
    LOINC,
    Gettext,
    Kind,
    Line,
    code_in,
    concept,
    label_of,
    optional,
    patient_ref,
    shown_label,
    text_of,
)

ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CONTACT_ROLE = "http://terminology.hl7.org/CodeSystem/v2-0131"
CARNET_CONTACT = "urn:carnet:contact-role"  # the French "personne de confiance" has no HL7 code
ORGAN_DONATION_SYSTEM = "urn:carnet:organ-donation"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"  # the national id of professionals (8 + RPPS)
ADVANCE_DIRECTIVE = "42348-3"
ORGAN_DONATION = "75781-5"

# --- advance directives --------------------------------------------------------------------


def _document_line(item: Mapping[str, Any], t: Gettext) -> Line:
    return Line(
        str(item.get("description") or text_of(item.get("type"))),
        "",
        str(item.get("date") or "")[:10],
    )


def _no_form(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    raise NotImplementedError("advance directives are added through the document upload")


DIRECTIVES = Kind(
    slug="directives",
    title=N_("Directives anticipées"),
    add_label=N_("Ajouter mes directives anticipées"),
    intro=N_(
        "Vos souhaits sur votre fin de vie, si un jour vous ne pouviez plus les exprimer : "
        "ajoutez le document que vous avez rédigé et signé (PDF ou photo)."
    ),
    res_type="DocumentReference",
    fields=(),
    search=(("type", f"{LOINC}|{ADVANCE_DIRECTIVE}"),),
    matches=lambda item: code_in(item.get("type"), LOINC) == ADVANCE_DIRECTIVE,
    builder=_no_form,
    lister=_document_line,
    editable=False,
    upload_nature="directives-anticipees",
)

# --- organ donation ------------------------------------------------------------------------

POSITIONS = (
    ("accepte", N_("J'accepte de donner mes organes et tissus après ma mort")),
    ("partiel", N_("J'accepte de donner certains organes ou tissus seulement")),
    ("refuse", N_("Je refuse de donner mes organes et tissus")),
)


def _donation(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    position = values["position"]
    body: JSON = {
        "resourceType": "Observation",
        "status": "final",
        "code": concept(
            LOINC,
            ORGAN_DONATION,
            "Thoughts on organ and tissue donations [Reported]",
            "Position sur le don d'organes et de tissus",
        ),
        "subject": patient_ref(patient_id),
        "effectiveDateTime": today,
        "performer": [patient_ref(patient_id)],
        "valueCodeableConcept": concept(
            ORGAN_DONATION_SYSTEM, position, label_of(POSITIONS, position)
        ),
    }
    if values.get("precisions"):
        body["note"] = [{"text": values["precisions"]}]
    return body


def _donation_values(item: Mapping[str, Any]) -> dict[str, str]:
    notes = item.get("note") or [{}]
    return {
        "position": code_in(item.get("valueCodeableConcept"), ORGAN_DONATION_SYSTEM),
        "precisions": str(notes[0].get("text") or ""),
    }


def _donation_line(item: Mapping[str, Any], t: Gettext) -> Line:
    values = _donation_values(item)
    position = text_of(item.get("valueCodeableConcept"))
    return Line(
        shown_label(t, POSITIONS, values["position"], position),
        values["precisions"],
        str(item.get("effectiveDateTime") or ""),
    )


ORGAN_DONATION_KIND = Kind(
    slug="don-organes",
    title=N_("Don d'organes et de tissus"),
    add_label=N_("Indiquer ma position"),
    intro=N_(
        "En France, chacun est présumé donneur. Pour refuser, inscrivez-vous au registre "
        "national des refus de l'Agence de la biomédecine : ce que vous notez ici informe vos "
        "proches et les soignants, mais ne vous y inscrit pas."
    ),
    res_type="Observation",
    search=(("code", f"{LOINC}|{ORGAN_DONATION}"),),
    matches=lambda item: code_in(item.get("code"), LOINC) == ORGAN_DONATION,
    fields=(
        Field("position", N_("Ma position"), "select", required=True, options=POSITIONS),
        Field("precisions", N_("Précisions"), "textarea", max_length=1000,
              hint=N_("Par exemple les organes ou tissus que vous acceptez de donner.")),
    ),
    builder=_donation,
    reader=_donation_values,
    lister=_donation_line,
    single=True,
)  # fmt: skip

# --- people to contact ---------------------------------------------------------------------

RELATIONS = (
    ("SPS", N_("Conjoint ou conjointe")),
    ("PRN", N_("Parent")),
    ("CHILD", N_("Enfant")),
    ("SIB", N_("Frère ou sœur")),
    ("FRND", N_("Ami ou amie")),
    ("NBOR", N_("Voisin ou voisine")),
)


def _telecom(values: Mapping[str, Any]) -> list[JSON]:
    telecom = []
    if values.get("telephone"):
        telecom.append({"system": "phone", "value": values["telephone"]})
    if values.get("courriel"):
        telecom.append({"system": "email", "value": values["courriel"]})
    return telecom


def _telecom_value(item: Mapping[str, Any], system: str) -> str:
    return next(
        (str(t.get("value") or "") for t in item.get("telecom") or [] if t.get("system") == system),
        "",
    )


def _contact(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    relation = values["lien"]
    roles = [concept(ROLE_CODE, relation, label_of(RELATIONS, relation))]
    if values.get("urgence"):
        roles.append(concept(CONTACT_ROLE, "C", "Emergency Contact", "Personne à prévenir"))
    if values.get("confiance"):
        roles.append(concept(CARNET_CONTACT, "personne-de-confiance", "Personne de confiance"))
    body: JSON = {
        "resourceType": "RelatedPerson",
        "active": True,
        "patient": patient_ref(patient_id),
        "relationship": roles,
        "name": [{"text": values["nom"]}],
    }
    optional(body, "telecom", _telecom(values))
    return body


def _contact_values(item: Mapping[str, Any]) -> dict[str, str]:
    roles = item.get("relationship") or []
    return {
        "nom": str(((item.get("name") or [{}])[0]).get("text") or ""),
        "lien": next((code_in(r, ROLE_CODE) for r in roles if code_in(r, ROLE_CODE)), ""),
        "urgence": "1" if any(code_in(r, CONTACT_ROLE) == "C" for r in roles) else "",
        "confiance": "1" if any(code_in(r, CARNET_CONTACT) for r in roles) else "",
        "telephone": _telecom_value(item, "phone"),
        "courriel": _telecom_value(item, "email"),
    }


EMERGENCY_CONTACT = N_("Personne à prévenir en cas d'urgence")
TRUSTED_PERSON = N_("Personne de confiance")


def _contact_line(item: Mapping[str, Any], t: Gettext) -> Line:
    values = _contact_values(item)
    roles = [
        shown_label(t, RELATIONS, values["lien"]),
        t(EMERGENCY_CONTACT) if values["urgence"] else "",
        t(TRUSTED_PERSON) if values["confiance"] else "",
    ]
    reach = ", ".join(v for v in (values["telephone"], values["courriel"]) if v)
    detail = " · ".join(v for v in (", ".join(r for r in roles if r), reach) if v)
    return Line(values["nom"], detail, "")


CONTACTS = Kind(
    slug="contacts",
    title=N_("Personnes à prévenir"),
    add_label=N_("Ajouter une personne"),
    intro=N_(
        "Vos proches à prévenir en cas d'urgence et votre personne de confiance. Les noter ici "
        "ne leur donne aucun accès à votre dossier."
    ),
    res_type="RelatedPerson",
    fields=(
        Field("nom", N_("Nom et prénom"), required=True),
        Field("lien", N_("Lien avec vous"), "select", required=True, options=RELATIONS),
        Field("urgence", N_("Personne à prévenir en cas d'urgence"), "checkbox"),
        Field("confiance", N_("Personne de confiance"), "checkbox",
              hint=N_("Celle qui vous accompagne et peut être consultée si vous ne pouvez "
                      "plus vous exprimer.")),
        Field("telephone", N_("Téléphone"), "tel", hint=N_("Par exemple 06 12 34 56 78.")),
        Field("courriel", N_("Adresse électronique"), "email"),
    ),
    builder=_contact,
    reader=_contact_values,
    lister=_contact_line,
)  # fmt: skip

# --- my professionals ----------------------------------------------------------------------

BAD_RPPS = N_("Le numéro RPPS compte 11 chiffres.")


def _professional(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    member: JSON = {"display": values["nom"]}
    if values.get("rpps"):
        member["identifier"] = {"system": RPPS_SYSTEM, "value": f"8{values['rpps']}"}
    participant: JSON = {"member": member}
    if values.get("profession"):
        participant["role"] = [{"text": values["profession"]}]
    body: JSON = {
        "resourceType": "CareTeam",
        "status": "active",
        "name": values["nom"],
        "subject": patient_ref(patient_id),
        "participant": [participant],
    }
    optional(body, "telecom", _telecom(values))
    return body


def _professional_values(item: Mapping[str, Any]) -> dict[str, str]:
    participant = (item.get("participant") or [{}])[0]
    member = participant.get("member") or {}
    rpps = str((member.get("identifier") or {}).get("value") or "")
    return {
        "nom": str(member.get("display") or item.get("name") or ""),
        "profession": text_of((participant.get("role") or [{}])[0]),
        "rpps": rpps[1:] if rpps.startswith("8") else rpps,
        "telephone": _telecom_value(item, "phone"),
        "courriel": "",
    }


def _professional_line(item: Mapping[str, Any], t: Gettext) -> Line:
    values = _professional_values(item)
    detail = " · ".join(v for v in (values["profession"], values["telephone"]) if v)
    return Line(values["nom"], detail, "")


def _rpps_check(values: Mapping[str, Any]) -> dict[str, Message]:
    rpps = values.get("rpps")
    if rpps and not (len(rpps) == 11 and rpps.isdigit()):
        return {"rpps": Message(BAD_RPPS)}
    return {}


PROFESSIONALS = Kind(
    slug="professionnels",
    title=N_("Mes professionnels de santé"),
    add_label=N_("Ajouter un professionnel"),
    intro=N_(
        "Les professionnels qui vous suivent, pour les retrouver. Les noter ici ne leur donne "
        "aucun accès à votre dossier : l'accès suit la relation de soin."
    ),
    res_type="CareTeam",
    fields=(
        Field("nom", N_("Nom"), required=True, hint=N_("Par exemple : Dr Claire Martin.")),
        Field("profession", N_("Profession ou spécialité"),
              hint=N_("Par exemple : médecin traitant, cardiologue, kinésithérapeute.")),
        Field("rpps", N_("Numéro RPPS"), hint=N_("Facultatif : 11 chiffres, sur ses ordonnances."),
              max_length=11),
        Field("telephone", N_("Téléphone"), "tel", hint=N_("Par exemple 01 23 45 67 89.")),
    ),
    builder=_professional,
    reader=_professional_values,
    lister=_professional_line,
    check=_rpps_check,
)  # fmt: skip
