"""FHIR R4 resources to OMOP CDM 5.4 rows, one resource at a time (no I/O, no keys).

A mapped row holds CDM values and, apart from them, what the staging step resolves later: the
record it belongs to (for the pseudonym and the date shift), the coded values to look up, the
dates to shift or generalise, the encounter it refers to, and its FHIR type and id (for the
FHIR-id mapping kept outside the extract). Nothing here copies an identifier, a name, an address
or free text: only codes, dates, quantities and statuses are read (FHIR-to-OMOP IG F2O rules).
Records that are cancelled, not done or entered in error are not mapped: ``dropped`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from carnet.hub.omop.cdm import NUM_PRECISION, NUM_SCALE
from carnet.hub.omop.vocabulary import EHR_TYPE, GENDER, VISIT_BY_CLASS

# Statuses whose records never enter an extract, per FHIR type (F2O: cancelled, not done,
# entered in error; a refuted diagnosis and a medication not taken are the same in their types).
DROPPED_STATUSES: dict[str, frozenset[str]] = {
    "Encounter": frozenset({"cancelled", "entered-in-error"}),
    "Condition": frozenset({"entered-in-error", "refuted"}),
    "MedicationRequest": frozenset({"cancelled", "entered-in-error"}),
    "MedicationStatement": frozenset({"entered-in-error", "not-taken"}),
    "MedicationAdministration": frozenset({"not-done", "entered-in-error"}),
    "Immunization": frozenset({"not-done", "entered-in-error"}),
    "Procedure": frozenset({"not-done", "entered-in-error"}),
    "Observation": frozenset({"cancelled", "entered-in-error"}),
}
SOURCE_TYPES = ("Patient", *DROPPED_STATUSES)
MEASUREMENT_CATEGORIES = frozenset({"laboratory", "vital-signs"})
_QUANTUM = Decimal(1).scaleb(-NUM_SCALE)
_NUM_LIMIT = Decimal(10) ** (NUM_PRECISION - NUM_SCALE)


@dataclass
class Coded:
    """A coded value to resolve: its CDM columns and the code as the source wrote it."""

    concept_column: str
    source_column: str | None
    source_concept_column: str | None
    system: str | None
    code: str


@dataclass
class MappedRow:
    table: str
    patient_id: str
    res_type: str
    res_id: str
    values: dict[str, Any]
    coded: list[Coded] = field(default_factory=list)
    encounter_id: str | None = None  # the Encounter this row happened in, if any


@dataclass
class PersonFacts:
    """What the risk report needs of a person beyond the CDM: never written to the extract."""

    departement: str | None


@dataclass
class Mapped:
    rows: list[MappedRow] = field(default_factory=list)
    dropped: str | None = None  # "<Type>:<status>" when the record was left out
    person: PersonFacts | None = None


# -- small readers ------------------------------------------------------------------------------


def parse_moment(value: Any) -> tuple[date, datetime | None] | None:
    """A FHIR date or dateTime as (the date as written, the UTC moment if a time was given)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    return _parsed_moment(value)


@lru_cache(maxsize=1 << 16)
def _parsed_moment(value: str) -> tuple[date, datetime | None] | None:
    # a store repeats the same days and moments many times: each distinct text parsed once
    try:
        if len(value) == 4:
            return date(int(value), 1, 1), None
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1), None
        if len(value) == 10:
            return date.fromisoformat(value), None
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.date(), utc


def decimal_value(value: Any) -> Decimal | None:
    """A quantity as DECIMAL(18,6), rounded half to even; None when absent or out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value)).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        return None
    return number if abs(number) < _NUM_LIMIT else None


def first_coding(concept: Any) -> tuple[str | None, str] | None:
    """The first coding with a code: (system, code verbatim). Its display is never read."""
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or ():
        if isinstance(coding, dict) and isinstance(coding.get("code"), str) and coding["code"]:
            system = coding.get("system")
            return (system if isinstance(system, str) else None), coding["code"]
    return None


def reference_id(ref: Any, res_type: str) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        text: str = ref["reference"]
        kind, _, ref_id = text.rpartition("/")
        if kind.endswith(res_type) and ref_id:
            return ref_id
    return None


def _status(body: dict[str, Any], res_type: str) -> str | None:
    if res_type == "Condition":
        found = first_coding(body.get("verificationStatus"))
        return found[1] if found else None
    status = body.get("status")
    return status if isinstance(status, str) else None


def _start_end(body: dict[str, Any], *names: str) -> tuple[Any, Any]:
    """The start and end of the first of ``names`` present: a dateTime, or a Period."""
    for name in names:
        value = body.get(name)
        if isinstance(value, str):
            return value, None
        if isinstance(value, dict) and ("start" in value or "end" in value):
            return value.get("start"), value.get("end")
    return None, None


def _dates(prefix: str, start: Any, end: Any) -> dict[str, Any]:
    """``<prefix>_date``/``_datetime`` and their end columns (``visit_start`` -> ``visit_end``,
    ``procedure`` -> ``procedure_end``); nothing when the start is not a date."""
    begun, ended = parse_moment(start), parse_moment(end)
    if begun is None:
        return {}
    values: dict[str, Any] = {f"{prefix}_date": begun[0], f"{prefix}_datetime": begun[1]}
    if ended is not None:
        end_prefix = prefix.replace("start", "end") if "start" in prefix else f"{prefix}_end"
        values[f"{end_prefix}_date"] = ended[0]
        values[f"{end_prefix}_datetime"] = ended[1]
    return values


# -- one function per FHIR type -------------------------------------------------------------------


def map_resource(res_type: str, res_id: str, patient_id: str, body: dict[str, Any]) -> Mapped:
    """The CDM rows of one resource of ``patient_id``'s record."""
    status = _status(body, res_type)
    if status is not None and status in DROPPED_STATUSES.get(res_type, frozenset()):
        return Mapped(dropped=f"{res_type}:{status}")
    mapper = _MAPPERS.get(res_type)
    if mapper is None:
        return Mapped()
    row = mapper(res_type, res_id, patient_id, body)
    if isinstance(row, Mapped):
        return row
    return Mapped(rows=[row] if row is not None else [])


def _person(res_type: str, res_id: str, patient_id: str, body: dict[str, Any]) -> Mapped:
    born = parse_moment(body.get("birthDate"))
    gender = body.get("gender") if isinstance(body.get("gender"), str) else None
    values: dict[str, Any] = {
        "gender_concept_id": GENDER.get(gender or "", 0),
        "gender_source_value": gender,
        "race_concept_id": 0,
        "ethnicity_concept_id": 0,
        "birth_date": born[0] if born else None,  # split into year/month/day by staging
    }
    rows = [MappedRow("person", patient_id, res_type, res_id, values)]
    died = parse_moment(body.get("deceasedDateTime"))
    if died is not None:
        death = {
            "death_date": died[0],
            "death_datetime": died[1],
            "death_type_concept_id": EHR_TYPE,
        }
        death["cause_concept_id"] = 0
        rows.append(MappedRow("death", patient_id, res_type, res_id, death))
    return Mapped(rows=rows, person=PersonFacts(_departement(body)))


def _departement(body: dict[str, Any]) -> str | None:
    """The département of the first French postal code (three digits overseas): a
    quasi-identifier for the risk report, never written to the extract."""
    for address in body.get("address") or ():
        code = address.get("postalCode") if isinstance(address, dict) else None
        if isinstance(code, str) and len(code) == 5 and code.isdigit():
            return code[:3] if code.startswith("97") else code[:2]
    return None


def _visit(res_type: str, res_id: str, patient_id: str, body: dict[str, Any]) -> MappedRow | None:
    start, end = _start_end(body, "period")
    values = _dates("visit_start", start, end)
    if not values:
        return None
    klass = body.get("class")
    code = klass.get("code") if isinstance(klass, dict) else None
    code = code if isinstance(code, str) else None
    values |= {
        "visit_concept_id": VISIT_BY_CLASS.get(code or "", 0),
        "visit_type_concept_id": EHR_TYPE,
        "visit_source_value": code,
        "visit_source_concept_id": 0,
    }
    return MappedRow("visit_occurrence", patient_id, res_type, res_id, values)


def _event(
    table: str, date_prefix: str, prefix: str, concept_key: str, date_names: tuple[str, ...]
) -> Any:
    """A mapper for the many types that are one code at one time (conditions, drugs, procedures)."""

    def mapper(
        res_type: str, res_id: str, patient_id: str, body: dict[str, Any]
    ) -> MappedRow | None:
        start, end = _start_end(body, *date_names)
        values = _dates(date_prefix, start, end)
        found = first_coding(body.get(concept_key))
        if not values or found is None:
            return None
        values[f"{prefix}_type_concept_id"] = EHR_TYPE
        system, code = found
        coded = [
            Coded(
                f"{prefix}_concept_id",
                f"{prefix}_source_value",
                f"{prefix}_source_concept_id",
                system,
                code,
            )
        ]
        row = MappedRow(table, patient_id, res_type, res_id, values, coded)
        row.encounter_id = reference_id(body.get("encounter") or body.get("context"), "Encounter")
        if table == "drug_exposure":
            _drug_quantities(body, values)
        return row

    return mapper


def _drug_quantities(body: dict[str, Any], values: dict[str, Any]) -> None:
    dispense = body.get("dispenseRequest")
    if not isinstance(dispense, dict):
        return
    quantity = dispense.get("quantity")
    if isinstance(quantity, dict):
        values["quantity"] = decimal_value(quantity.get("value"))
    repeats = dispense.get("numberOfRepeatsAllowed")
    if isinstance(repeats, int) and not isinstance(repeats, bool):
        values["refills"] = repeats
    supply = dispense.get("expectedSupplyDuration")
    if isinstance(supply, dict) and supply.get("code") == "d":
        days = supply.get("value")
        if isinstance(days, int | float) and not isinstance(days, bool) and days == int(days):
            values["days_supply"] = int(days)


def _observation(
    res_type: str, res_id: str, patient_id: str, body: dict[str, Any]
) -> MappedRow | None:
    quantity = body.get("valueQuantity") if isinstance(body.get("valueQuantity"), dict) else None
    categories = {
        code
        for category in body.get("category") or ()
        for coding in (category.get("coding") or () if isinstance(category, dict) else ())
        if isinstance(coding, dict) and isinstance(code := coding.get("code"), str)
    }
    table = "measurement" if quantity or categories & MEASUREMENT_CATEGORIES else "observation"
    start, _ = _start_end(body, "effectiveDateTime", "effectivePeriod", "effectiveInstant")
    if start is None:
        start = body.get("issued")
    moment = parse_moment(start)
    found = first_coding(body.get("code"))
    if moment is None or found is None:
        return None
    values: dict[str, Any] = {
        f"{table}_date": moment[0],
        f"{table}_datetime": moment[1],
        f"{table}_type_concept_id": EHR_TYPE,
    }
    coded = [
        Coded(
            f"{table}_concept_id",
            f"{table}_source_value",
            f"{table}_source_concept_id",
            found[0],
            found[1],
        )
    ]
    if quantity is not None:
        values["value_as_number"] = decimal_value(quantity.get("value"))
        unit = quantity.get("code") or quantity.get("unit")
        if isinstance(unit, str):
            unit_source = "unit_source_concept_id" if table == "measurement" else None
            coded.append(
                Coded(
                    "unit_concept_id",
                    "unit_source_value",
                    unit_source,
                    quantity.get("system") or "http://unitsofmeasure.org",
                    unit,
                )
            )
    value_code = first_coding(body.get("valueCodeableConcept"))
    if value_code is not None:
        coded.append(Coded("value_as_concept_id", "value_source_value", None, *value_code))
    if table == "measurement":
        ranges = body.get("referenceRange") or ()
        first = ranges[0] if ranges and isinstance(ranges[0], dict) else {}
        for bound, column in (("low", "range_low"), ("high", "range_high")):
            limit = first.get(bound)
            if isinstance(limit, dict):
                values[column] = decimal_value(limit.get("value"))
    row = MappedRow(table, patient_id, res_type, res_id, values, coded)
    row.encounter_id = reference_id(body.get("encounter"), "Encounter")
    return row


_MAPPERS: dict[str, Any] = {
    "Patient": _person,
    "Encounter": _visit,
    "Condition": _event(
        "condition_occurrence",
        "condition_start",
        "condition",
        "code",
        ("onsetDateTime", "onsetPeriod", "recordedDate"),
    ),
    "MedicationRequest": _event(
        "drug_exposure", "drug_exposure_start", "drug", "medicationCodeableConcept", ("authoredOn",)
    ),
    "MedicationStatement": _event(
        "drug_exposure",
        "drug_exposure_start",
        "drug",
        "medicationCodeableConcept",
        ("effectiveDateTime", "effectivePeriod"),
    ),
    "MedicationAdministration": _event(
        "drug_exposure",
        "drug_exposure_start",
        "drug",
        "medicationCodeableConcept",
        ("effectiveDateTime", "effectivePeriod"),
    ),
    "Immunization": _event(
        "drug_exposure", "drug_exposure_start", "drug", "vaccineCode", ("occurrenceDateTime",)
    ),
    "Procedure": _event(
        "procedure_occurrence",
        "procedure",
        "procedure",
        "code",
        ("performedDateTime", "performedPeriod"),
    ),
    "Observation": _observation,
}
