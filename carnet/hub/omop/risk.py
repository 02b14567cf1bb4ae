"""The re-identification report of an extract, in SQL (DuckDB) over the staged tables.

Quasi-identifiers: year of birth, sex, département, and rare diagnosis codes (condition codes
held by fewer than k people in the extract). Equivalence classes are the people sharing all of
them. Reported with ARX's risk models: k-anonymity (the smallest class), distinct l-diversity of
the person's main diagnosis within each class, prosecutor risk (1 / smallest class), marketer
risk (classes / records), and the records in classes below the permit's k. To reach k, Carnet
first generalises (year of birth to five-year bands, in the released person table too), then
suppresses the people still in classes below k if they are few enough (at most
``MAX_SUPPRESSED_SHARE`` of the people); otherwise the release is blocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from carnet.hub.omop.spec import RiskReport

QUASI_IDENTIFIERS = ("year_of_birth", "sex", "departement", "rare_codes")
SENSITIVE = "diagnosis"
MAX_SUPPRESSED_SHARE = 0.05
YEAR_BAND = 5


@dataclass(frozen=True)
class Measure:
    records: int
    classes: int
    k: int
    l_diversity: int
    prosecutor: float
    marketer: float
    below_k: int


def check_quasi_identifiers(names: tuple[str, ...]) -> tuple[str, ...]:
    """The spec's quasi-identifiers (all four when it names none); ValueError for an unknown one."""
    unknown = sorted(set(names) - set(QUASI_IDENTIFIERS))
    if unknown:
        raise ValueError(f"unknown quasi-identifiers {unknown}; known: {list(QUASI_IDENTIFIERS)}")
    return names or QUASI_IDENTIFIERS


def frame_sql(files: dict[str, Path], k: int, *, generalised: bool) -> str:
    """One row per person: their quasi-identifiers and main diagnosis, as released."""
    person = _parquet(files["person"])
    qi = _parquet(files["person_qi"])
    year = f"year_of_birth - year_of_birth % {YEAR_BAND}" if generalised else "year_of_birth"
    conditions = (
        f"SELECT person_id, condition_source_value AS code FROM {_parquet(files['condition_occurrence'])}"
        " WHERE condition_source_value IS NOT NULL"
        if "condition_occurrence" in files
        else "SELECT CAST(NULL AS BIGINT) AS person_id, CAST(NULL AS VARCHAR) AS code WHERE false"
    )
    return f"""
        WITH cond AS ({conditions}),
        holders AS (SELECT code FROM cond GROUP BY code HAVING count(DISTINCT person_id) < {k}),
        rare AS (
            SELECT person_id, string_agg(DISTINCT code, '|' ORDER BY code) AS rare_codes
            FROM cond WHERE code IN (SELECT code FROM holders) GROUP BY person_id
        ),
        counted AS (SELECT person_id, code, count(*) AS n FROM cond GROUP BY person_id, code),
        main AS (  -- the most frequent code, the smallest on a tie (one sort per person)
            SELECT person_id, code AS diagnosis FROM counted
            QUALIFY row_number() OVER (PARTITION BY person_id ORDER BY n DESC, code) = 1
        )
        SELECT p.person_id,
               coalesce(CAST({year} AS VARCHAR), '') AS year_of_birth,
               coalesce(p.gender_source_value, '') AS sex,
               coalesce(q.departement, '') AS departement,
               coalesce(r.rare_codes, '') AS rare_codes,
               coalesce(m.diagnosis, '') AS diagnosis
        FROM {person} p
        LEFT JOIN {qi} q USING (person_id)
        LEFT JOIN rare r USING (person_id)
        LEFT JOIN main m USING (person_id)
    """


def measure(con: duckdb.DuckDBPyConnection, frame: str, qis: tuple[str, ...], k: int) -> Measure:
    """k, l, the two risks and the records below k of ``frame`` (a query or a table name)."""
    keys = ", ".join(qis) if qis else "'all'"
    row = con.execute(
        f"""
        WITH classes AS (
            SELECT count(*) AS size, count(DISTINCT {SENSITIVE}) AS distinct_values
            FROM ({frame}) GROUP BY {keys}
        )
        SELECT coalesce(sum(size), 0), count(*), coalesce(min(size), 0),
               coalesce(min(distinct_values), 0),
               coalesce(sum(CASE WHEN size < {int(k)} THEN size ELSE 0 END), 0)
        FROM classes
        """
    ).fetchall()[0]
    records, classes, smallest, l_div, below = (int(v) for v in row)
    return Measure(
        records=records,
        classes=classes,
        k=smallest,
        l_diversity=l_div,
        prosecutor=1 / smallest if smallest else 0.0,
        marketer=classes / records if records else 0.0,
        below_k=below,
    )


@dataclass(frozen=True)
class Protection:
    report: RiskReport
    generalised: bool  # year of birth in five-year bands in the released person table
    suppressed: tuple[int, ...]  # person ids removed from every table


def protect(
    con: duckdb.DuckDBPyConnection, files: dict[str, Path], qis: tuple[str, ...], k: int
) -> Protection:
    """The least change that reaches k (nothing, generalisation, then bounded suppression),
    and the report on the extract as released; blocked when even that does not reach k."""
    for generalised in (False, True):
        # materialised once per level: measured, then searched for the people to suppress
        con.execute(
            "CREATE OR REPLACE TEMP TABLE risk_frame AS "
            + frame_sql(files, k, generalised=generalised)
        )
        before = measure(con, "SELECT * FROM risk_frame", qis, k)
        if before.records == 0 or before.k >= k:
            return _done(qis, k, before, generalised, ())
        if before.below_k <= MAX_SUPPRESSED_SHARE * before.records:
            keys = ", ".join(qis)
            rows = con.execute(
                f"""
                WITH small AS (
                    SELECT {keys} FROM risk_frame GROUP BY {keys} HAVING count(*) < {int(k)}
                )
                SELECT person_id FROM risk_frame SEMI JOIN small USING ({keys})
                ORDER BY person_id
                """
            ).fetchall()
            suppressed = tuple(int(r[0]) for r in rows)
            con.execute(
                "DELETE FROM risk_frame WHERE person_id IN (SELECT unnest(?))", [list(suppressed)]
            )
            after = measure(con, "SELECT * FROM risk_frame", qis, k)
            return _done(qis, k, after, generalised, suppressed)
    return _done(qis, k, before, True, ())


def _done(
    qis: tuple[str, ...], k: int, m: Measure, generalised: bool, suppressed: tuple[int, ...]
) -> Protection:
    steps = (f"year_of_birth:{YEAR_BAND}-year bands",) if generalised else ()
    report = RiskReport(
        quasi_identifiers=qis,
        records=m.records,
        classes=m.classes,
        k_anonymity=m.k,
        l_diversity=m.l_diversity,
        prosecutor_risk=m.prosecutor,
        marketer_risk=m.marketer,
        records_below_k=m.below_k,
        k_threshold=k,
        suppressed_records=len(suppressed),
        generalisation=steps,
        release_blocked=m.records > 0 and m.k < k,
    )
    return Protection(report, generalised, suppressed)


def _parquet(path: Path) -> str:
    return "read_parquet('" + str(path).replace("'", "''") + "')"
