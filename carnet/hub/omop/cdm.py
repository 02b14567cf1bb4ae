"""The OMOP CDM 5.4 tables Carnet extracts: their columns, in CDM order, with their types.

Types are few and canonical so that both engines write the same values: ``int`` (BIGINT),
``date``, ``ts`` (a timestamp without time zone, in UTC), ``num`` (DECIMAL(18,6): no binary
floating point), ``str``. Columns that can only hold free text (``sig``, ``stop_reason``,
``lot_number``, ``value_as_string``) exist because the CDM has them, but Carnet leaves them empty:
free text never leaves the record store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa  # type: ignore[import-untyped]

NUM_PRECISION, NUM_SCALE = 18, 6
ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "date": pa.date32(),
    "ts": pa.timestamp("us"),
    "num": pa.decimal128(NUM_PRECISION, NUM_SCALE),
    "str": pa.string(),
}
SQL_TYPES = {
    "int": "BIGINT",
    "date": "DATE",
    "ts": "TIMESTAMP",
    "num": f"DECIMAL({NUM_PRECISION},{NUM_SCALE})",
    "str": "VARCHAR",
}


@dataclass(frozen=True)
class CdmTable:
    name: str
    key: str  # the row id (person_id for person and death): the canonical sort order
    columns: tuple[tuple[str, str], ...]  # (name, type)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def type_of(self, column: str) -> str:
        return dict(self.columns)[column]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in self.columns])


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    pairs = (item.split(":") for item in spec.split())
    return tuple((name, kind) for name, kind in pairs)


_VISIT_REFS = "provider_id:int visit_occurrence_id:int visit_detail_id:int"

TABLES: dict[str, CdmTable] = {
    t.name: t
    for t in (
        CdmTable(
            "person",
            "person_id",
            _cols(
                "person_id:int gender_concept_id:int year_of_birth:int month_of_birth:int "
                "day_of_birth:int birth_datetime:ts race_concept_id:int ethnicity_concept_id:int "
                "location_id:int provider_id:int care_site_id:int person_source_value:str "
                "gender_source_value:str gender_source_concept_id:int race_source_value:str "
                "race_source_concept_id:int ethnicity_source_value:str "
                "ethnicity_source_concept_id:int"
            ),
        ),
        CdmTable(
            "observation_period",
            "observation_period_id",
            _cols(
                "observation_period_id:int person_id:int observation_period_start_date:date "
                "observation_period_end_date:date period_type_concept_id:int"
            ),
        ),
        CdmTable(
            "visit_occurrence",
            "visit_occurrence_id",
            _cols(
                "visit_occurrence_id:int person_id:int visit_concept_id:int visit_start_date:date "
                "visit_start_datetime:ts visit_end_date:date visit_end_datetime:ts "
                "visit_type_concept_id:int provider_id:int care_site_id:int "
                "visit_source_value:str visit_source_concept_id:int admitted_from_concept_id:int "
                "admitted_from_source_value:str discharged_to_concept_id:int "
                "discharged_to_source_value:str preceding_visit_occurrence_id:int"
            ),
        ),
        CdmTable(
            "condition_occurrence",
            "condition_occurrence_id",
            _cols(
                "condition_occurrence_id:int person_id:int condition_concept_id:int "
                "condition_start_date:date condition_start_datetime:ts condition_end_date:date "
                "condition_end_datetime:ts condition_type_concept_id:int "
                f"condition_status_concept_id:int stop_reason:str {_VISIT_REFS} "
                "condition_source_value:str condition_source_concept_id:int "
                "condition_status_source_value:str"
            ),
        ),
        CdmTable(
            "drug_exposure",
            "drug_exposure_id",
            _cols(
                "drug_exposure_id:int person_id:int drug_concept_id:int "
                "drug_exposure_start_date:date drug_exposure_start_datetime:ts "
                "drug_exposure_end_date:date drug_exposure_end_datetime:ts verbatim_end_date:date "
                "drug_type_concept_id:int stop_reason:str refills:int quantity:num "
                "days_supply:int sig:str route_concept_id:int lot_number:str "
                f"{_VISIT_REFS} drug_source_value:str drug_source_concept_id:int "
                "route_source_value:str dose_unit_source_value:str"
            ),
        ),
        CdmTable(
            "procedure_occurrence",
            "procedure_occurrence_id",
            _cols(
                "procedure_occurrence_id:int person_id:int procedure_concept_id:int "
                "procedure_date:date procedure_datetime:ts procedure_end_date:date "
                "procedure_end_datetime:ts procedure_type_concept_id:int modifier_concept_id:int "
                f"quantity:int {_VISIT_REFS} procedure_source_value:str "
                "procedure_source_concept_id:int modifier_source_value:str"
            ),
        ),
        CdmTable(
            "measurement",
            "measurement_id",
            _cols(
                "measurement_id:int person_id:int measurement_concept_id:int "
                "measurement_date:date measurement_datetime:ts measurement_time:str "
                "measurement_type_concept_id:int operator_concept_id:int value_as_number:num "
                "value_as_concept_id:int unit_concept_id:int range_low:num range_high:num "
                f"{_VISIT_REFS} measurement_source_value:str measurement_source_concept_id:int "
                "unit_source_value:str unit_source_concept_id:int value_source_value:str "
                "measurement_event_id:int meas_event_field_concept_id:int"
            ),
        ),
        CdmTable(
            "observation",
            "observation_id",
            _cols(
                "observation_id:int person_id:int observation_concept_id:int "
                "observation_date:date observation_datetime:ts observation_type_concept_id:int "
                "value_as_number:num value_as_string:str value_as_concept_id:int "
                f"qualifier_concept_id:int unit_concept_id:int {_VISIT_REFS} "
                "observation_source_value:str observation_source_concept_id:int "
                "unit_source_value:str qualifier_source_value:str value_source_value:str "
                "observation_event_id:int obs_event_field_concept_id:int"
            ),
        ),
        CdmTable(
            "death",
            "person_id",
            _cols(
                "person_id:int death_date:date death_datetime:ts death_type_concept_id:int "
                "cause_concept_id:int cause_source_value:str cause_source_concept_id:int"
            ),
        ),
    )
}

FREE_TEXT_COLUMNS = frozenset({"sig", "stop_reason", "lot_number", "value_as_string"})
"""CDM columns that hold free text: always empty in a Carnet extract."""

IDENTIFYING_COLUMNS = frozenset(
    {"person_source_value", "location_id", "provider_id", "care_site_id"}
)
"""Columns that would point back at a person, a place or a professional: always empty."""
