"""Clinical resource builders: observations, conditions, medications, immunizations, allergies."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from carnet.demo.catalogue import ALLERGIES, CHILD_SCHEDULE, VACCINES, Drug
from carnet.demo.context import PatientContext
from carnet.demo.dates import RECORDS_START, REFERENCE_DATE, at_time, random_date, years_between
from carnet.demo.directory import Organization, Practitioner
from carnet.demo.fhir_builders import JSON, concept, quantity, ref
from carnet.demo.systems import (
    ALLERGY_CLINICAL,
    ALLERGY_VER,
    ATC,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VER,
    CVX,
    INTERPRETATION,
    LOINC,
    OBS_CATEGORY,
    SNOMED,
)


def _height_at(ctx: PatientContext, age: float) -> float:
    adult = ctx.adult_height
    adult_age = 16.0 if ctx.gender == "female" else 18.0
    # Piecewise-linear growth curve scaled to the patient's adult height.
    if age < 1:
        height = 50 + 25 * age
    elif age < 2:
        height = 75 + 12 * (age - 1)
    elif age < adult_age:
        height = 87 + (adult - 87) * (age - 2) / (adult_age - 2)
    else:
        height = adult - max(0.0, age - 70) * 0.15
    return round(height + ctx.rng.gauss(0, 0.4), 1)


def _weight_at(ctx: PatientContext, age: float, height_cm: float) -> float:
    if age < 1:
        weight = 3.4 + 6.5 * age + ctx.rng.gauss(0, 0.3)
    else:
        child_bmi = 16.0
        progress = min(1.0, max(0.0, (age - 6) / 12))
        bmi = child_bmi + (ctx.bmi - child_bmi) * progress + ctx.rng.gauss(0, 0.3)
        weight = bmi * (height_cm / 100) ** 2
    return round(max(weight, 2.0), 1)


def _observation(
    ctx: PatientContext,
    encounter_id: str,
    moment: datetime,
    category: str,
    code: tuple[str, str, str],
    value: JSON | None = None,
    performer: JSON | None = None,
) -> JSON:
    loinc, display, text = code
    obs: JSON = {
        "resourceType": "Observation",
        "id": ctx.new_id("observation"),
        "status": "final",
        "category": [
            concept(
                OBS_CATEGORY,
                category,
                "Vital Signs" if category == "vital-signs" else "Laboratory",
            )
        ],
        "code": concept(LOINC, loinc, display, text),
        "subject": ctx.subject,
        "encounter": ref("Encounter", encounter_id),
        "effectiveDateTime": ctx.when(moment),
    }
    if performer is not None:
        obs["performer"] = [performer]
    if value is not None:
        obs["valueQuantity"] = value
    ctx.resources.append(obs)
    return obs


def _interpretation(value: float, low: float, high: float) -> JSON:
    if value < low:
        code, display = "L", "Low"
    elif value > high:
        code, display = "H", "High"
    else:
        code, display = "N", "Normal"
    return concept(INTERPRETATION, code, display)


def add_lab(
    ctx: PatientContext,
    encounter_id: str,
    moment: datetime,
    code: tuple[str, str, str],
    value: float,
    unit: tuple[str, str],
    normal: tuple[float, float],
    lab: Organization,
) -> dict[str, Any]:
    obs = _observation(
        ctx,
        encounter_id,
        moment,
        "laboratory",
        code,
        quantity(value, *unit),
        ref("Organization", lab.id),
    )
    obs["issued"] = ctx.when(moment + timedelta(hours=ctx.rng.randint(3, 8)))
    obs["interpretation"] = [_interpretation(value, *normal)]
    obs["referenceRange"] = [
        {"low": quantity(normal[0], *unit), "high": quantity(normal[1], *unit)}
    ]
    return obs


def add_vitals(
    ctx: PatientContext,
    encounter_id: str,
    moment: datetime,
    practitioner: Practitioner,
    hypertensive: bool,
    summary: list[str],
) -> None:
    age = years_between(ctx.birth, moment.date())
    performer = ref("Practitioner", practitioner.id)
    taken = moment + timedelta(minutes=5)
    height = _height_at(ctx, age)
    weight = _weight_at(ctx, age, height)
    if age < 18 or ctx.rng.random() < 0.4:
        _observation(
            ctx,
            encounter_id,
            taken,
            "vital-signs",
            ("8302-2", "Body height", "Taille"),
            quantity(height, "cm", "cm"),
            performer,
        )
        summary.append(f"Taille : {height} cm")
    _observation(
        ctx,
        encounter_id,
        taken,
        "vital-signs",
        ("29463-7", "Body weight", "Poids"),
        quantity(weight, "kg", "kg"),
        performer,
    )
    summary.append(f"Poids : {weight} kg")
    if age < 1:
        rate = ctx.rng.randint(110, 150)
    elif age < 6:
        rate = ctx.rng.randint(85, 120)
    else:
        rate = ctx.rng.randint(55, 95)
    _observation(
        ctx,
        encounter_id,
        taken,
        "vital-signs",
        ("8867-4", "Heart rate", "Fréquence cardiaque"),
        quantity(rate, "/min", "/min"),
        performer,
    )
    summary.append(f"Fréquence cardiaque : {rate}/min")
    if age >= 3:
        if age < 18:
            systolic = round(ctx.rng.gauss(105, 8))
        else:
            systolic = round(ctx.rng.gauss(118 + max(0.0, age - 30) * 0.4, 10))
        if hypertensive:
            systolic += ctx.rng.randint(8, 25)
        diastolic = round(systolic * 0.62 + ctx.rng.gauss(0, 5))
        panel = _observation(
            ctx,
            encounter_id,
            taken,
            "vital-signs",
            ("85354-9", "Blood pressure panel with all children optional", "Pression artérielle"),
            None,
            performer,
        )
        panel["component"] = [
            {
                "code": concept(LOINC, "8480-6", "Systolic blood pressure", "Systolique"),
                "valueQuantity": quantity(systolic, "mmHg", "mm[Hg]"),
            },
            {
                "code": concept(LOINC, "8462-4", "Diastolic blood pressure", "Diastolique"),
                "valueQuantity": quantity(diastolic, "mmHg", "mm[Hg]"),
            },
        ]
        summary.append(f"Pression artérielle : {systolic}/{diastolic} mmHg")
    if age >= 18 and ctx.rng.random() < 0.5:
        bmi = round(weight / (height / 100) ** 2, 1)
        _observation(
            ctx,
            encounter_id,
            taken,
            "vital-signs",
            ("39156-5", "Body mass index (BMI) [Ratio]", "Indice de masse corporelle"),
            quantity(bmi, "kg/m2", "kg/m2"),
            performer,
        )


def add_condition(
    ctx: PatientContext,
    code: str,
    display: str,
    text: str,
    onset: datetime,
    recorder: Practitioner,
    encounter_id: str | None,
    abatement: datetime | None,
) -> str:
    cid = ctx.new_id("condition")
    resolved = abatement is not None
    category = "encounter-diagnosis" if encounter_id else "problem-list-item"
    category_display = "Encounter Diagnosis" if encounter_id else "Problem List Item"
    resource: JSON = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": concept(
            CONDITION_CLINICAL,
            "resolved" if resolved else "active",
            "Resolved" if resolved else "Active",
        ),
        "verificationStatus": concept(CONDITION_VER, "confirmed", "Confirmed"),
        "category": [concept(CONDITION_CATEGORY, category, category_display)],
        "code": concept(SNOMED, code, display, text),
        "subject": ctx.subject,
        "onsetDateTime": ctx.when(onset),
        "recordedDate": ctx.when(onset),
        "recorder": ref("Practitioner", recorder.id),
    }
    if encounter_id:
        resource["encounter"] = ref("Encounter", encounter_id)
    if abatement is not None:
        resource["abatementDateTime"] = ctx.when(abatement)
    ctx.resources.append(resource)
    return cid


def add_medication_request(
    ctx: PatientContext,
    drug: Drug,
    authored: datetime,
    requester: Practitioner,
    encounter_id: str,
    condition_id: str,
    active: bool,
) -> None:
    ctx.resources.append(
        {
            "resourceType": "MedicationRequest",
            "id": ctx.new_id("medicationrequest"),
            "status": "active" if active else "completed",
            "intent": "order",
            "medicationCodeableConcept": concept(ATC, drug.atc, drug.display, drug.display),
            "subject": ctx.subject,
            "encounter": ref("Encounter", encounter_id),
            "authoredOn": ctx.when(authored),
            "requester": ref("Practitioner", requester.id),
            "reasonReference": [ref("Condition", condition_id)],
            "dosageInstruction": [{"text": drug.dosage}],
        }
    )


def choose_allergies(ctx: PatientContext) -> list[tuple[Any, ...]]:
    if ctx.rng.random() >= 0.2:
        return []
    count = 2 if ctx.rng.random() < 0.15 else 1
    return ctx.rng.sample(list(ALLERGIES), count)


def add_allergies(ctx: PatientContext, allergies: list[tuple[Any, ...]], gp: Practitioner) -> None:
    for code, display, text, category, criticality, manifestation in allergies:
        recorded = random_date(
            ctx.rng, max(ctx.birth + timedelta(days=180), RECORDS_START), REFERENCE_DATE
        )
        man_code, man_display, man_text = manifestation
        ctx.resources.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": ctx.new_id("allergyintolerance"),
                "clinicalStatus": concept(ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": concept(ALLERGY_VER, "confirmed", "Confirmed"),
                "type": "allergy",
                "category": [category],
                "criticality": criticality,
                "code": concept(SNOMED, code, display, text),
                "patient": ctx.subject,
                "recordedDate": ctx.when(at_time(recorded, ctx.rng.randint(8, 18), 0)),
                "recorder": ref("Practitioner", gp.id),
                "reaction": [
                    {
                        "manifestation": [concept(SNOMED, man_code, man_display, man_text)],
                        "severity": "severe" if criticality == "high" else "mild",
                    }
                ],
            }
        )


def add_immunizations(ctx: PatientContext, gp: Practitioner) -> None:
    rng = ctx.rng
    doses: list[tuple[str, date]] = []
    for vaccine, months in CHILD_SCHEDULE:
        day = ctx.birth + timedelta(days=int(months * 30.44) + rng.randint(0, 20))
        doses.append((vaccine, day))
    age_now = years_between(ctx.birth, REFERENCE_DATE)
    if age_now >= 65:
        for season in range(2018, 2026):
            doses.append(("flu", date(season, rng.randint(10, 12), rng.randint(1, 28))))
    if rng.random() < 0.7:
        first = date(2021, rng.randint(2, 8), rng.randint(1, 28))
        if years_between(ctx.birth, first) >= 18:
            doses.append(("covid", first))
            doses.append(("covid", first + timedelta(days=rng.randint(28, 42))))
    nurses = ctx.directory.by_role("nurse")
    pharmacists = ctx.directory.by_role("pharmacist")
    for vaccine, day in sorted(doses, key=lambda dose: dose[1]):
        if not (RECORDS_START <= day < REFERENCE_DATE) or day <= ctx.birth:
            continue
        if vaccine == "hpv" and rng.random() < 0.4:
            continue  # HPV coverage is far from complete in France
        cvx, display, text = VACCINES[vaccine]
        if vaccine == "flu":
            performer = rng.choice(pharmacists + nurses)
        elif vaccine == "covid":
            performer = rng.choice(nurses)
        else:
            performer = gp
        moment = at_time(day, rng.randint(8, 18), rng.choice((0, 15, 30, 45)))
        letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
        ctx.resources.append(
            {
                "resourceType": "Immunization",
                "id": ctx.new_id("immunization"),
                "status": "completed",
                "vaccineCode": concept(CVX, cvx, display, text),
                "patient": ctx.subject,
                "occurrenceDateTime": ctx.when(moment),
                "primarySource": True,
                "lotNumber": f"{letters}{rng.randint(1000, 9999)}",
                "performer": [{"actor": ref("Practitioner", performer.id)}],
            }
        )
