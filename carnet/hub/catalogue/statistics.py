"""What the catalogue says about a dataset, computed in SQL over an OMOP CDM 5.4 database
(DuckDB): records and individuals per table (rounded like any output: counts of 7 or less
withheld, others to the nearest 5), the age range, the coding systems, the temporal coverage,
and a quality label per table on five dimensions, each a share between 0 and 1:

- completeness: non-null cells over all cells of the table's columns;
- validity: rows whose concept is mapped (``*_concept_id`` not 0) and whose dates are not in the
  future;
- uniqueness: distinct primary keys over rows;
- timeliness: 1 when the latest date is within a year of the reference day, decreasing linearly to
  0 at five years;
- consistency: rows whose person exists in ``person`` and whose end date is not before their start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from carnet.hub.disclosure.profiles import OPENSAFELY, rounded

# table -> (primary key, concept column, start date column, end date column, coding system)
OMOP_LAYOUT: dict[str, tuple[str, str | None, str | None, str | None, str | None]] = {
    "person": ("person_id", "gender_concept_id", None, None, None),
    "observation_period": (
        "observation_period_id",
        None,
        "observation_period_start_date",
        "observation_period_end_date",
        None,
    ),
    "visit_occurrence": (
        "visit_occurrence_id",
        "visit_concept_id",
        "visit_start_date",
        "visit_end_date",
        None,
    ),
    "condition_occurrence": (
        "condition_occurrence_id",
        "condition_concept_id",
        "condition_start_date",
        "condition_end_date",
        "http://id.who.int/icd/release/10",  # CIM-10 in the French record
    ),
    "drug_exposure": (
        "drug_exposure_id",
        "drug_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_end_date",
        "http://www.whocc.no/atc",
    ),
    "procedure_occurrence": (
        "procedure_occurrence_id",
        "procedure_concept_id",
        "procedure_date",
        None,
        "https://www.atih.sante.fr/ccam",
    ),
    "measurement": (
        "measurement_id",
        "measurement_concept_id",
        "measurement_date",
        None,
        "http://loinc.org",
    ),
    "observation": (
        "observation_id",
        "observation_concept_id",
        "observation_date",
        None,
        "http://snomed.info/sct",
    ),
    "death": ("person_id", "cause_concept_id", "death_date", None, None),
}


@dataclass(frozen=True)
class Quality:
    completeness: float
    validity: float
    uniqueness: float
    timeliness: float
    consistency: float


@dataclass(frozen=True)
class TableStatistics:
    table: str
    records: int | None  # rounded; None when 7 or less
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    quality: Quality


@dataclass(frozen=True)
class DatasetStatistics:
    records: int | None
    individuals: int | None
    min_age: int | None
    max_age: int | None
    first_date: date | None
    last_date: date | None
    coding_systems: tuple[str, ...]
    tables: tuple[TableStatistics, ...]


def _released(count: int) -> int | None:
    return None if count < OPENSAFELY.min_count else rounded(count, OPENSAFELY)


def _share(part: float | None, whole: float | None) -> float:
    if not whole:
        return 1.0
    return round(float(part or 0) / float(whole), 4)


def _table_statistics(
    conn: duckdb.DuckDBPyConnection, table: str, today: date, has_person: bool
) -> tuple[TableStatistics, int, date | None, date | None]:
    key, concept, start, end, _system = OMOP_LAYOUT[table]
    columns = tuple(
        (str(name), str(kind))
        for name, kind in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    )
    names = {name for name, _ in columns}
    q = f'"{table}"'
    non_null = " + ".join(f'count("{name}")' for name, _ in columns) or "0"
    valid = (
        " AND ".join(
            part
            for part in (
                f'"{concept}" <> 0' if concept in names else "",
                f'("{start}" IS NULL OR "{start}" <= $today)' if start in names else "",
            )
            if part
        )
        or "true"
    )
    consistent = (
        " AND ".join(
            part
            for part in (
                '"person_id" IN (SELECT person_id FROM person)'
                if has_person and table != "person" and "person_id" in names
                else "",
                f'("{end}" IS NULL OR "{end}" >= "{start}")'
                if end in names and start in names
                else "",
            )
            if part
        )
        or "true"
    )
    first = f'min("{start}")' if start in names else "NULL::DATE"
    last = "NULL::DATE"
    if start in names:  # several tables have no end date: their last day is their last start
        last = f'max(coalesce("{end}", "{start}"))' if end in names else f'max("{start}")'
    distinct_key = f'count(DISTINCT "{key}")' if key in names else "count(*)"
    sql = (
        f"SELECT count(*), {non_null}, count(*) FILTER (WHERE {valid}),"
        f" {distinct_key}, count(*) FILTER (WHERE {consistent}), {first}, {last} FROM {q}"
    )
    params = {"today": today} if "$today" in sql else {}
    rows, filled, valid_rows, distinct, consistent_rows, first_day, last_day = conn.execute(
        sql, params
    ).fetchone() or (0, 0, 0, 0, 0, None, None)
    timeliness = 1.0
    if last_day is not None:
        age_days = (today - last_day).days
        timeliness = round(max(0.0, min(1.0, 1 - (age_days - 365) / (4 * 365))), 4)
    quality = Quality(
        completeness=_share(filled, rows * len(columns)),
        validity=_share(valid_rows, rows),
        uniqueness=_share(distinct, rows),
        timeliness=timeliness,
        consistency=_share(consistent_rows, rows),
    )
    return TableStatistics(table, _released(rows), columns, quality), rows, first_day, last_day


def dataset_statistics(
    conn: duckdb.DuckDBPyConnection,
    today: date,
    *,
    coding_systems: tuple[str, ...] | None = None,
) -> DatasetStatistics:
    """The catalogue's figures for the OMOP database behind ``conn`` (its tables or views).
    ``coding_systems``: the systems of the codes actually met (read from the store); by default
    the usual system of each table present."""
    present = {
        str(r[0])
        for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    tables = [t for t in OMOP_LAYOUT if t in present]
    has_person = "person" in present
    stats: list[TableStatistics] = []
    total = 0
    firsts: list[date] = []
    lasts: list[date] = []
    for table in tables:
        table_stats, rows, first_day, last_day = _table_statistics(conn, table, today, has_person)
        stats.append(table_stats)
        total += rows
        firsts += [first_day] if first_day else []
        lasts += [last_day] if last_day else []
    individuals, min_age, max_age = 0, None, None
    if has_person:
        individuals, youngest, oldest = conn.execute(
            "SELECT count(DISTINCT person_id), max(year_of_birth), min(year_of_birth) FROM person"
        ).fetchone() or (0, None, None)
        min_age = None if youngest is None else today.year - int(youngest)
        max_age = None if oldest is None else today.year - int(oldest)
    systems = coding_systems
    if systems is None:
        systems = tuple(sorted({s for t in tables if (s := OMOP_LAYOUT[t][4])}))
    return DatasetStatistics(
        records=_released(total),
        individuals=_released(int(individuals)),
        min_age=min_age,
        max_age=max_age,
        first_date=min(firsts) if firsts else None,
        last_date=max(lasts) if lasts else None,
        coding_systems=systems,
        tables=tuple(stats),
    )
