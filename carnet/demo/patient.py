"""One synthetic patient's transaction Bundle: demographics, encounters and their timeline."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from faker import Faker

from carnet.demo.catalogue import (
    ACUTE_AMBULATORY,
    ACUTE_EMERGENCY,
    AZITHROMYCIN,
    CHRONIC_CONDITIONS,
    COVID,
    OBESITY,
    AcuteCondition,
    ChronicCondition,
    Drug,
    prevalence,
)
from carnet.demo.clinical import (
    add_allergies,
    add_condition,
    add_immunizations,
    add_lab,
    add_medication_request,
    add_vitals,
    choose_allergies,
)
from carnet.demo.communes import COMMUNES, FOREIGN_COUNTRIES, Commune, ForeignCountry
from carnet.demo.context import PatientContext
from carnet.demo.dates import REFERENCE_DATE, add_years, at_time, random_date, years_between
from carnet.demo.directory import Directory, Practitioner, fictional_phone
from carnet.demo.documents import add_document
from carnet.demo.fhir_builders import JSON, address, bundle, coding, concept, ref, resource_id
from carnet.demo.systems import (
    ACT_CODE,
    BIRTH_PLACE_URL,
    COMMUNE_SYSTEM,
    FR_V2_0203,
    INS_NIR_SYSTEM,
    INSEE_CODE_URL,
    MARITAL,
    PARTICIPATION,
)
from carnet.identity.nir import make_nir


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if c.isascii()).lower()
    return "".join(c if c.isalnum() else "-" for c in plain).strip("-")


def _encounter_times(ctx: PatientContext, day: date, klass: str) -> tuple[datetime, datetime]:
    rng = ctx.rng
    if klass == "AMB":
        start = at_time(day, rng.randint(8, 18), rng.choice((0, 15, 30, 45)))
        end = start + timedelta(minutes=rng.choice((15, 20, 30, 45)))
    elif klass == "EMER":
        start = at_time(day, rng.randint(0, 23), rng.randint(0, 59))
        end = start + timedelta(minutes=rng.randint(90, 480))
    else:
        start = at_time(day, rng.randint(8, 20), rng.randint(0, 59))
        end = start + timedelta(days=rng.randint(2, 9), hours=rng.randint(0, 6))
    # Nothing may end on or after the reference date.
    latest = at_time(REFERENCE_DATE - timedelta(days=1), 23, 0)
    if end > latest:
        # Shorten rather than shift, so the start never moves before the birth date.
        end = latest
        start = min(start, end - timedelta(minutes=30))
    return start, end


_CLASS_DISPLAY: Final = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}
_CLASS_TEXT: Final = {
    "AMB": "Consultation",
    "EMER": "Passage aux urgences",
    "IMP": "Hospitalisation complète",
}


@dataclass
class _ChronicState:
    condition: ChronicCondition
    onset: date
    condition_id: str = ""
    drug: Drug | None = None


def patient_bundle(seed: int, index: int, directory: Directory, fake: Faker) -> JSON:
    rng = random.Random(f"{seed}:{index}")
    fake.seed_instance(rng.getrandbits(64))

    gender = rng.choice(("male", "female"))
    age_years = min(96.0, rng.triangular(0, 96, 42))
    birth = REFERENCE_DATE - timedelta(days=int(age_years * 365.25) + rng.randint(60, 300))
    residence = rng.choice(COMMUNES)
    birth_commune: Commune | None
    country: ForeignCountry | None = None
    if rng.random() < 0.12:
        birth_commune = None
        country = rng.choice(FOREIGN_COUNTRIES)
        place = f"99{country.code}"
    else:
        birth_commune = residence if rng.random() < 0.6 else rng.choice(COMMUNES)
        place = birth_commune.insee
        if birth_commune.department in ("2A", "2B") and birth.year < 1976:
            # Corsica was a single department "20" before 1976; NIRs keep that code.
            place = "20" + place[2:]
    nir = make_nir(
        1 if gender == "male" else 2, birth.year, birth.month, place, rng.randint(1, 999)
    )

    patient_id = resource_id(seed, f"{index}:patient")
    ctx = PatientContext(
        seed=seed,
        index=index,
        rng=rng,
        directory=directory,
        patient_id=patient_id,
        department=residence.department,
        birth=birth,
        gender=gender,
        adult_height=rng.gauss(176.0, 7.0) if gender == "male" else rng.gauss(163.0, 6.5),
        bmi=min(42.0, max(17.5, rng.gauss(25.5, 4.5))),
    )
    age_now = years_between(birth, REFERENCE_DATE)
    is_child = age_now < 16
    gp = rng.choice(directory.by_role("pediatrician" if is_child else "gp"))

    # ---- Patient
    first_names = fake.first_name_male if gender == "male" else fake.first_name_female
    given = [first_names()]
    for _ in range(rng.choice((0, 1, 1, 2))):
        extra = first_names()
        if extra not in given:
            given.append(extra)
    family = fake.last_name()
    names: list[JSON] = [{"use": "official", "family": family, "given": given}]
    marital: str | None = None
    if age_now >= 18:
        marital = rng.choices(("S", "M", "D", "W"), (40, 45, 10, 5 if age_now < 65 else 25))[0]
    if gender == "female" and marital in ("M", "W") and rng.random() < 0.7:
        # Married women often use their spouse's name; the INS keeps the birth name.
        names.append({"use": "usual", "family": fake.last_name(), "given": [given[0]]})

    telecom: list[JSON] = []
    if rng.random() < 0.85:
        telecom.append(
            {"system": "phone", "value": fictional_phone(rng, mobile=True), "use": "mobile"}
        )
    if age_now >= 15 and rng.random() < 0.6:
        domain = rng.choice(("example.org", "example.com", "example.net"))
        local = f"{_ascii_slug(given[0])}.{_ascii_slug(family)}"
        telecom.append({"system": "email", "value": f"{local}@{domain}", "use": "home"})

    if birth_commune is not None:
        birth_address: JSON = {
            "extension": [
                {
                    "url": INSEE_CODE_URL,
                    "valueCoding": {"system": COMMUNE_SYSTEM, "code": birth_commune.insee},
                }
            ],
            "city": birth_commune.name,
            "postalCode": birth_commune.postal_code,
            "country": "FR",
        }
    else:
        assert country is not None
        birth_address = {"country": country.iso2}

    patient: JSON = {
        "resourceType": "Patient",
        "id": patient_id,
        "extension": [{"url": BIRTH_PLACE_URL, "valueAddress": birth_address}],
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": FR_V2_0203, "code": "INS-NIR"}]},
                "system": INS_NIR_SYSTEM,
                "value": nir,
            }
        ],
        "active": True,
        "name": names,
        "gender": gender,
        "birthDate": birth.isoformat(),
        "address": [address(fake.street_address(), residence, "home")],
        "generalPractitioner": [ref("Practitioner", gp.id)],
    }
    if telecom:
        patient["telecom"] = telecom
    if marital is not None:
        labels = {"S": "Never Married", "M": "Married", "D": "Divorced", "W": "Widowed"}
        patient["maritalStatus"] = concept(MARITAL, marital, labels[marital])
    ctx.resources.append(patient)

    # ---- Encounters: dates first, so conditions can be anchored to them.
    window_start = max(birth + timedelta(days=7), REFERENCE_DATE - timedelta(days=3650))
    count = rng.randint(2, 8)
    days = sorted(random_date(rng, window_start, REFERENCE_DATE) for _ in range(count))
    classes = [rng.choices(("AMB", "EMER", "IMP"), (75, 15, 10))[0] for _ in days]
    last_day = days[-1]

    # ---- Chronic conditions, decided from the age at the last encounter.
    age_last = years_between(birth, last_day)
    chronic: list[_ChronicState] = []
    for condition in CHRONIC_CONDITIONS:
        if rng.random() < prevalence(condition, age_last, gender):
            earliest = max(add_years(birth, condition.min_age), birth + timedelta(days=30))
            chronic.append(_ChronicState(condition, random_date(rng, earliest, last_day)))
    if age_last >= 18 and ctx.bmi >= 30:
        earliest = max(add_years(birth, 18), last_day - timedelta(days=3650))
        chronic.append(_ChronicState(OBESITY, random_date(rng, earliest, last_day)))
    for state in chronic:
        onset = at_time(state.onset, rng.randint(8, 18), 0)
        state.condition_id = add_condition(
            ctx,
            state.condition.snomed,
            state.condition.display,
            state.condition.text,
            onset,
            gp,
            None,
            None,
        )
        if state.condition.drugs:
            state.drug = rng.choice(state.condition.drugs)

    allergies = choose_allergies(ctx)
    penicillin_allergy = any(a[0] == "91936005" for a in allergies)
    hypertensive = any(s.condition.snomed == "38341003" for s in chronic)
    diabetes = {s.condition.snomed for s in chronic} & {"44054006", "46635009"}

    # ---- Encounters with their observations, diagnoses and prescriptions
    hospitals = directory.by_kind("hospital")
    labs = directory.by_kind("laboratory")
    document_source: tuple[str, datetime, Practitioner, list[str], str] | None = None
    for number, (day, klass) in enumerate(zip(days, classes, strict=True)):
        encounter_id = ctx.new_id("encounter")
        start, end = _encounter_times(ctx, day, klass)
        age = years_between(birth, day)
        followed = [s for s in chronic if s.onset <= day]
        if klass == "EMER":
            practitioner = rng.choice(directory.by_role("emergency"))
        elif klass == "IMP":
            # Hospital stays are led by the specialist of a followed disease, or by a
            # pulmonologist for the default cause of admission (pneumonia).
            specialists = [
                s.condition.specialist for s in followed if s.condition.specialist != "gp"
            ]
            role = rng.choice(specialists) if specialists else "pulmonologist"
            practitioner = rng.choice(directory.by_role(role))
        elif followed and rng.random() < 0.3:
            practitioner = rng.choice(directory.by_role(rng.choice(followed).condition.specialist))
        else:
            practitioner = gp
        summary: list[str] = [f"Motif : {_CLASS_TEXT[klass]}"]

        encounter: JSON = {
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": "finished",
            "class": coding(ACT_CODE, klass, _CLASS_DISPLAY[klass]),
            "type": [{"text": _CLASS_TEXT[klass]}],
            "subject": ctx.subject,
            "participant": [
                {
                    "type": [
                        concept(PARTICIPATION, "PPRF", "primary performer"),
                    ],
                    "individual": ref("Practitioner", practitioner.id),
                }
            ],
            "period": {"start": ctx.when(start), "end": ctx.when(end)},
            "serviceProvider": ref("Organization", rng.choice(hospitals).id),
        }
        ctx.resources.append(encounter)

        add_vitals(ctx, encounter_id, start, practitioner, hypertensive, summary)

        # Acute problem diagnosed at this encounter?
        acute: AcuteCondition | None = None
        if klass == "EMER":
            acute = rng.choice(ACUTE_EMERGENCY)
        elif klass == "IMP":
            acute = ACUTE_EMERGENCY[2] if not followed or rng.random() < 0.5 else None
        elif rng.random() < 0.45:
            if date(2020, 3, 1) <= day <= date(2023, 6, 30) and rng.random() < 0.25:
                acute = COVID
            else:
                candidates = [
                    a
                    for a in ACUTE_AMBULATORY
                    if a.min_age <= age <= a.max_age
                    and not (a.snomed == "68566005" and gender == "male")
                ]
                acute = rng.choice(candidates) if candidates else None
        reasons: list[JSON] = []
        if acute is not None:
            abatement = end + timedelta(days=rng.randint(7, 21))
            resolved = abatement.date() < REFERENCE_DATE
            condition_id = add_condition(
                ctx,
                acute.snomed,
                acute.display,
                acute.text,
                start,
                practitioner,
                encounter_id,
                abatement if resolved else None,
            )
            reasons.append(ref("Condition", condition_id))
            summary.append(f"Diagnostic : {acute.text}")
            drug = acute.drug
            if drug is not None and acute.antibiotic and penicillin_allergy:
                drug = AZITHROMYCIN  # avoid prescribing a penicillin to an allergic patient
            if drug is not None and practitioner.is_doctor:
                add_medication_request(
                    ctx,
                    drug,
                    end - timedelta(minutes=5),
                    practitioner,
                    encounter_id,
                    condition_id,
                    active=not resolved,
                )
                summary.append(f"Traitement : {drug.dosage}")
        for state in followed:
            reasons.append(ref("Condition", state.condition_id))
            summary.append(f"Suivi : {state.condition.text}")
        if reasons:
            encounter["reasonReference"] = reasons

        # Chronic treatments are renewed at the last encounter, still active.
        if number == len(days) - 1 and practitioner.is_doctor:
            for state in followed:
                if state.drug is not None:
                    add_medication_request(
                        ctx,
                        state.drug,
                        end - timedelta(minutes=2),
                        practitioner,
                        encounter_id,
                        state.condition_id,
                        active=True,
                    )
                    summary.append(f"Traitement : {state.drug.dosage}")

        # Labs: systematic for diabetics, otherwise occasional for adults.
        if (diabetes and followed) or (age >= 18 and rng.random() < 0.3):
            lab = rng.choice(labs)
            drawn = start + timedelta(minutes=20)
            diabetic_now = any(s.condition.snomed in diabetes for s in followed)
            glucose = round(rng.gauss(150, 30) if diabetic_now else rng.gauss(92, 8))
            add_lab(
                ctx,
                encounter_id,
                drawn,
                ("2339-0", "Glucose [Mass/volume] in Blood", "Glycémie"),
                glucose,
                ("mg/dL", "mg/dL"),
                (70, 100),
                lab,
            )
            summary.append(f"Glycémie : {glucose} mg/dL")
            if diabetic_now or rng.random() < 0.3:
                hba1c = round(rng.gauss(7.3, 0.8) if diabetic_now else rng.gauss(5.3, 0.3), 1)
                add_lab(
                    ctx,
                    encounter_id,
                    drawn,
                    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hémoglobine glyquée"),
                    hba1c,
                    ("%", "%"),
                    (4.0, 5.6),
                    lab,
                )
                summary.append(f"HbA1c : {hba1c} %")
            mean = 0.95 if gender == "male" else 0.75
            creatinine = round(max(0.3, rng.gauss(mean + max(0.0, age - 60) * 0.005, 0.12)), 2)
            normal = (0.7, 1.3) if gender == "male" else (0.5, 1.1)
            add_lab(
                ctx,
                encounter_id,
                drawn,
                ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "Créatinine"),
                creatinine,
                ("mg/dL", "mg/dL"),
                normal,
                lab,
            )

        if klass in ("AMB", "IMP") and practitioner.is_doctor:
            document_source = (encounter_id, end, practitioner, summary, klass)

    add_immunizations(ctx, gp)
    add_allergies(ctx, allergies, gp)

    # ---- About one patient in ten gets a consultation report as a PDF.
    if document_source is not None and rng.random() < 0.1:
        encounter_id, end, author, summary, klass = document_source
        add_document(
            ctx, encounter_id, end, author, summary, klass, names[0], rng.choice(hospitals)
        )

    return bundle(ctx.resources)
