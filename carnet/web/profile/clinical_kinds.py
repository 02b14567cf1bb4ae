"""The clinical kinds of the profile: history (Condition), allergies (AllergyIntolerance),
current treatments (MedicationStatement), family history (FamilyMemberHistory), vaccinations
(Immunization, ``primarySource`` false), measurements (vital-signs Observations, read by the
record's charts). Every body names the patient as recorder or asserter where FHIR has one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carnet.web.i18n import N_
from carnet.web.profile.fields import Field, Message
from carnet.web.profile.kind import (
    JSON,
    LOINC,
    UCUM,
    Gettext,
    Kind,
    Line,
    code_in,
    concept,
    decimal_text,
    label_of,
    patient_ref,
    shown_label,
    since,
    text_of,
)

CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
IMMUNIZATION_ORIGIN = "http://terminology.hl7.org/CodeSystem/immunization-origin"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# --- history -------------------------------------------------------------------------------

CONDITION_CATEGORIES = (
    ("problem-list-item", N_("Antécédent ou problème de santé")),
    ("health-concern", N_("Préoccupation de santé")),
)
CONDITION_STATUSES = (("active", N_("En cours")), ("resolved", N_("Guéri ou terminé")))


def _condition(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    category = values["categorie"]
    return {
        "resourceType": "Condition",
        "clinicalStatus": concept(
            CONDITION_CLINICAL, values["statut"], values["statut"].capitalize()
        ),
        "category": [
            concept(CONDITION_CATEGORY, category, label_of(CONDITION_CATEGORIES, category))
        ],
        "subject": patient_ref(patient_id),
        "recordedDate": today,
        "recorder": patient_ref(patient_id),
        "asserter": patient_ref(patient_id),
    }


def _condition_values(item: Mapping[str, Any]) -> dict[str, str]:
    categories = item.get("category") or [{}]
    return {
        "categorie": code_in(categories[0], CONDITION_CATEGORY) or "problem-list-item",
        "statut": code_in(item.get("clinicalStatus"), CONDITION_CLINICAL) or "active",
    }


def _condition_line(item: Mapping[str, Any], t: Gettext) -> Line:
    status = code_in(item.get("clinicalStatus"), CONDITION_CLINICAL)
    return Line(
        text_of(item.get("code")),
        shown_label(t, CONDITION_STATUSES, status),
        str(item.get("onsetDateTime") or ""),
    )


HISTORY = Kind(
    slug="antecedents",
    title=N_("Antécédents et problèmes de santé"),
    add_label=N_("Ajouter un antécédent"),
    intro=N_("Vos maladies, opérations et problèmes de santé, passés ou en cours."),
    res_type="Condition",
    fields=(
        Field("libelle", N_("Antécédent ou problème de santé"), required=True,
              hint=N_("Par exemple : asthme, appendicite opérée.")),
        Field("categorie", N_("Nature"), "select", required=True, options=CONDITION_CATEGORIES),
        since("debut"),
        Field("statut", N_("Aujourd'hui"), "select", required=True, options=CONDITION_STATUSES),
    ),
    builder=_condition,
    named=(("libelle", "code"),),
    copied=(("debut", "onsetDateTime"),),
    reader=_condition_values,
    lister=_condition_line,
)  # fmt: skip

# --- allergies -----------------------------------------------------------------------------

CRITICALITIES = (
    ("low", N_("Faible")),
    ("high", N_("Élevée")),
    ("unable-to-assess", N_("Je ne sais pas")),
)


def _allergy(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    body: JSON = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": concept(ALLERGY_CLINICAL, "active", "Active"),
        "patient": patient_ref(patient_id),
        "recordedDate": today,
        "recorder": patient_ref(patient_id),
        "asserter": patient_ref(patient_id),
    }
    if values.get("reaction"):
        body["reaction"] = [{"manifestation": [{"text": values["reaction"]}]}]
    return body


def _allergy_values(item: Mapping[str, Any]) -> dict[str, str]:
    reactions = item.get("reaction") or [{}]
    manifestations = reactions[0].get("manifestation") or [{}]
    return {"reaction": text_of(manifestations[0])}


ALLERGIES = Kind(
    slug="allergies",
    title=N_("Allergies et intolérances"),
    add_label=N_("Ajouter une allergie"),
    intro=N_("Les médicaments, aliments ou substances auxquels vous réagissez."),
    res_type="AllergyIntolerance",
    fields=(
        Field("substance", N_("Substance"), required=True,
              hint=N_("Par exemple : pénicilline, arachide, latex.")),
        Field("reaction", N_("Réaction"), hint=N_("Par exemple : urticaire, gêne respiratoire.")),
        Field("gravite", N_("Gravité"), "select", options=(("", N_("Non précisée")), *CRITICALITIES)),
        since(),
    ),
    builder=_allergy,
    named=(("substance", "code"),),
    copied=(("gravite", "criticality"), ("depuis", "onsetDateTime")),
    reader=_allergy_values,
    shows=("substance", "reaction", "depuis"),
)  # fmt: skip

# --- treatments ----------------------------------------------------------------------------


def _treatment(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    body: JSON = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "subject": patient_ref(patient_id),
        "dateAsserted": today,
        "informationSource": patient_ref(patient_id),
    }
    if values.get("depuis"):
        body["effectivePeriod"] = {"start": values["depuis"]}
    if values.get("posologie"):
        body["dosage"] = [{"text": values["posologie"]}]
    return body


def _treatment_values(item: Mapping[str, Any]) -> dict[str, str]:
    dosage = (item.get("dosage") or [{}])[0]
    return {
        "posologie": str(dosage.get("text") or ""),
        "depuis": str((item.get("effectivePeriod") or {}).get("start") or ""),
    }


TREATMENTS = Kind(
    slug="traitements",
    title=N_("Traitements en cours"),
    add_label=N_("Ajouter un traitement"),
    intro=N_("Les médicaments que vous prenez, prescrits ou non."),
    res_type="MedicationStatement",
    search=(("status", "active"),),
    fields=(
        Field("medicament", N_("Médicament"), required=True,
              hint=N_("Son nom et son dosage, par exemple : Doliprane 1000 mg.")),
        Field("posologie", N_("Comment vous le prenez"),
              hint=N_("Par exemple : 1 comprimé matin et soir.")),
        since(),
    ),
    builder=_treatment,
    named=(("medicament", "medicationCodeableConcept"),),
    reader=_treatment_values,
    shows=("medicament", "posologie", "depuis"),
)  # fmt: skip

# --- family history ------------------------------------------------------------------------

RELATIVES = (
    ("MTH", N_("Mère")),
    ("FTH", N_("Père")),
    ("SIS", N_("Sœur")),
    ("BRO", N_("Frère")),
    ("DAU", N_("Fille")),
    ("SON", N_("Fils")),
    ("GRMTH", N_("Grand-mère")),
    ("GRFTH", N_("Grand-père")),
    ("FAMMEMB", N_("Autre membre de la famille")),
)


def _family(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    relative = values["lien"]
    condition: JSON = {"code": {"text": values["maladie"]}}
    if values.get("age") is not None:
        age = values["age"]
        condition["onsetAge"] = {"value": age, "unit": "ans", "system": UCUM, "code": "a"}
    return {
        "resourceType": "FamilyMemberHistory",
        "status": "completed",
        "patient": patient_ref(patient_id),
        "date": today,
        "relationship": concept(ROLE_CODE, relative, label_of(RELATIVES, relative)),
        "condition": [condition],
    }


def _family_values(item: Mapping[str, Any]) -> dict[str, str]:
    condition = (item.get("condition") or [{}])[0]
    age = (condition.get("onsetAge") or {}).get("value")
    return {
        "lien": code_in(item.get("relationship"), ROLE_CODE),
        "maladie": text_of(condition.get("code")),
        "age": str(age) if isinstance(age, int) else "",
    }


def _family_line(item: Mapping[str, Any], t: Gettext) -> Line:
    values = _family_values(item)
    relative = shown_label(t, RELATIVES, values["lien"], text_of(item.get("relationship")))
    return Line(values["maladie"], relative)


FAMILY = Kind(
    slug="famille",
    title=N_("Antécédents familiaux"),
    add_label=N_("Ajouter un antécédent familial"),
    intro=N_("Les maladies de vos proches parents qui peuvent compter pour votre santé."),
    res_type="FamilyMemberHistory",
    fields=(
        Field("lien", N_("Qui"), "select", required=True, options=RELATIVES),
        Field("maladie", N_("Maladie"), required=True,
              hint=N_("Par exemple : diabète, cancer du sein, infarctus.")),
        Field("age", N_("Âge au début de la maladie"), "integer", low=0, high=120,
              hint=N_("En années, si vous le connaissez.")),
    ),
    builder=_family,
    reader=_family_values,
    lister=_family_line,
)  # fmt: skip

# --- vaccinations --------------------------------------------------------------------------


def _vaccination(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    return {
        "resourceType": "Immunization",
        "status": "completed",
        "patient": patient_ref(patient_id),
        "recorded": today,
        "primarySource": False,  # reported by the person, not by who vaccinated
        "reportOrigin": concept(IMMUNIZATION_ORIGIN, "recall", "Parent/Guardian/Patient Recall"),
    }


VACCINATIONS = Kind(
    slug="vaccinations",
    title=N_("Vaccinations"),
    add_label=N_("Ajouter une vaccination"),
    intro=N_("Les vaccins que vous avez reçus, par exemple d'après votre carnet de vaccination."),
    res_type="Immunization",
    fields=(
        Field("vaccin", N_("Vaccin"), required=True,
              hint=N_("Par exemple : diphtérie, tétanos, poliomyélite (rappel).")),
        since("date", N_("Date"), required=True),
        Field("lot", N_("Numéro de lot"), hint=N_("Facultatif : il figure sur votre carnet.")),
    ),
    builder=_vaccination,
    named=(("vaccin", "vaccineCode"),),
    copied=(("date", "occurrenceDateTime"), ("lot", "lotNumber")),
    shows=("vaccin", "lot", "date"),
)  # fmt: skip

# --- measurements --------------------------------------------------------------------------

# slug -> (LOINC code, French display, UCUM unit, (low, high) accepted)
MEASURED: dict[str, tuple[str, str, str, tuple[float, float]]] = {
    "poids": ("29463-7", "Poids", "kg", (0.5, 400)),
    "taille": ("8302-2", "Taille", "cm", (20, 250)),
    "glycemie": ("2339-0", "Glycémie", "g/L", (0.1, 10)),
    "tension": ("85354-9", "Pression artérielle", "mm[Hg]", (20, 300)),
}
MEASURE_CHOICES = (
    ("poids", N_("Poids (kg)")),
    ("taille", N_("Taille (cm)")),
    ("tension", N_("Pression artérielle (mmHg)")),
    ("glycemie", N_("Glycémie (g/L)")),
)
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
NEEDS_VALUE = N_("Saisissez la valeur mesurée.")
NEEDS_PRESSURE = N_("Saisissez les deux valeurs de la pression artérielle.")
PRESSURE_ORDER = N_("La pression systolique est plus haute que la diastolique.")
MEASURE_RANGE = N_("Saisissez une valeur entre %(low)s et %(high)s.")


def _quantity(value: float, unit: str) -> JSON:
    shown = "mmHg" if unit == "mm[Hg]" else unit
    return {"value": value, "unit": shown, "system": UCUM, "code": unit}


def _measure(values: Mapping[str, Any], patient_id: str, today: str) -> JSON:
    code, display, unit, _ = MEASURED[values["mesure"]]
    body: JSON = {
        "resourceType": "Observation",
        "status": "final",
        "category": [concept(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")],
        "code": concept(LOINC, code, display),
        "subject": patient_ref(patient_id),
        "effectiveDateTime": values["date"],
        "performer": [patient_ref(patient_id)],
    }
    if values["mesure"] == "tension":
        body["component"] = [
            {
                "code": concept(LOINC, SYSTOLIC, "Systolique"),
                "valueQuantity": _quantity(values["systolique"], unit),
            },
            {
                "code": concept(LOINC, DIASTOLIC, "Diastolique"),
                "valueQuantity": _quantity(values["diastolique"], unit),
            },
        ]
    else:
        body["valueQuantity"] = _quantity(values["valeur"], unit)
    return body


def _measure_check(values: Mapping[str, Any]) -> dict[str, Message]:
    """The value each measurement needs, within what a person can measure."""
    slug = values.get("mesure")
    if slug not in MEASURED:
        return {}
    if slug == "tension":
        high, low = values.get("systolique"), values.get("diastolique")
        if high is None or low is None:
            missing = "systolique" if high is None else "diastolique"
            return {missing: Message(NEEDS_PRESSURE)}
        if high <= low:
            return {"systolique": Message(PRESSURE_ORDER)}
        return {}
    value = values.get("valeur")
    if value is None:
        return {"valeur": Message(NEEDS_VALUE)}
    bottom, top = MEASURED[slug][3]
    if not bottom <= value <= top:
        return {"valeur": Message(MEASURE_RANGE, {"low": bottom, "high": top})}
    return {}


def _measure_slug(item: Mapping[str, Any]) -> str:
    code = code_in(item.get("code"), LOINC)
    return next((slug for slug, spec in MEASURED.items() if spec[0] == code), "")


def _component(item: Mapping[str, Any], code: str) -> Any:
    for component in item.get("component") or []:
        if code_in(component.get("code"), LOINC) == code:
            return (component.get("valueQuantity") or {}).get("value")
    return None


def _measure_values(item: Mapping[str, Any]) -> dict[str, str]:
    return {
        "mesure": _measure_slug(item),
        "valeur": decimal_text((item.get("valueQuantity") or {}).get("value")),
        "systolique": decimal_text(_component(item, SYSTOLIC)),
        "diastolique": decimal_text(_component(item, DIASTOLIC)),
        "date": str(item.get("effectiveDateTime") or "")[:10],
    }


def _measure_line(item: Mapping[str, Any], t: Gettext) -> Line:
    values = _measure_values(item)
    slug = values["mesure"]
    unit = (item.get("valueQuantity") or {}).get("unit") or "mmHg"
    if slug == "tension":
        shown = f"{values['systolique']} / {values['diastolique']} {unit}"
    else:
        shown = f"{values['valeur']} {unit}"
    label = shown_label(t, MEASURE_CHOICES, slug, text_of(item.get("code")))
    return Line(label, shown, values["date"])


MEASUREMENTS = Kind(
    slug="mesures",
    title=N_("Mesures"),
    add_label=N_("Ajouter une mesure"),
    intro=N_("Votre poids, votre taille, votre tension ou votre glycémie, mesurés chez vous : "
             "ils s'ajoutent aux courbes de votre dossier."),
    res_type="Observation",
    search=(("code", ",".join(f"{LOINC}|{spec[0]}" for spec in MEASURED.values())),),
    matches=lambda item: bool(_measure_slug(item)),
    fields=(
        Field("mesure", N_("Mesure"), "select", required=True, options=MEASURE_CHOICES),
        Field("valeur", N_("Valeur"), "decimal", low=0, high=1000,
              hint=N_("Pour le poids, la taille ou la glycémie, par exemple 72,5.")),
        Field("systolique", N_("Pression systolique (le chiffre du haut)"), "decimal",
              low=20, high=300, hint=N_("Pour la tension, en mmHg, par exemple 128.")),
        Field("diastolique", N_("Pression diastolique (le chiffre du bas)"), "decimal",
              low=20, high=300, hint=N_("Pour la tension, en mmHg, par exemple 82.")),
        Field("date", N_("Date de la mesure"), "date", required=True,
              hint=N_("Par exemple 12/03/2025.")),
    ),
    builder=_measure,
    reader=_measure_values,
    lister=_measure_line,
    check=_measure_check,
)  # fmt: skip
