"""The re-identification report, computed in SQL, against independent oracles: pycanon for
k-anonymity and l-diversity, ARX's formulas (written here) for prosecutor and marketer risk;
and the suppression and generalisation that reach the permit's k, or block the release."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycanon import anonymity

from carnet.hub.omop.risk import MAX_SUPPRESSED_SHARE, QUASI_IDENTIFIERS, measure, protect

ROW = st.fixed_dictionaries(
    {
        "year_of_birth": st.sampled_from(["1950", "1951", "1980"]),
        "sex": st.sampled_from(["male", "female"]),
        "departement": st.sampled_from(["75", "13", "971"]),
        "rare_codes": st.sampled_from(["", "C1", "C1|C2"]),
        "diagnosis": st.sampled_from(["", "E11", "I10", "J45"]),
    }
)


@pytest.fixture(scope="module")
def database() -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory DuckDB for the module: opening one costs ~25 ms of CPU, a connection to it
    (``cursor()``) ~1 ms. Each test and example works on a connection of its own, whose
    registered frames and temporary tables no other connection sees."""
    with duckdb.connect() as db:
        yield db


def _arx(frame: pd.DataFrame, qis: list[str]) -> tuple[float, float, int]:
    """ARX's prosecutor risk (1 / smallest class), marketer risk (classes / records), smallest."""
    sizes = Counter(tuple(row) for row in frame[qis].itertuples(index=False))
    smallest = min(sizes.values())
    return 1 / smallest, len(sizes) / len(frame), smallest


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=30), qi_count=st.integers(1, 4))
def test_k_l_and_risks_agree_with_pycanon_and_arx(
    database: duckdb.DuckDBPyConnection, rows: list[dict[str, str]], qi_count: int
) -> None:
    frame = pd.DataFrame(rows)
    qis = list(QUASI_IDENTIFIERS[:qi_count])
    with database.cursor() as con:
        con.register("frame", frame)
        m = measure(con, "SELECT * FROM frame", tuple(qis), k=3)
    assert m.k == anonymity.k_anonymity(frame, qis)
    assert m.l_diversity == anonymity.l_diversity(frame, qis, ["diagnosis"])
    prosecutor, marketer, smallest = _arx(frame, qis)
    assert m.prosecutor == pytest.approx(prosecutor)
    assert m.marketer == pytest.approx(marketer)
    sizes = Counter(tuple(r) for r in frame[qis].itertuples(index=False))
    assert m.below_k == sum(n for n in sizes.values() if n < 3)
    assert m.records == len(frame) and smallest == m.k


def _staged(folder: Path, people: list[tuple[int, int, str, str, list[str]]]) -> dict[str, Path]:
    """Minimal staged tables: (person_id, year, sex, département, condition codes)."""
    folder.mkdir()
    files = {
        name: folder / f"{name}.parquet" for name in ("person", "person_qi", "condition_occurrence")
    }
    pq.write_table(
        pa.table(
            {
                "person_id": pa.array([p[0] for p in people], pa.int64()),
                "year_of_birth": pa.array([p[1] for p in people], pa.int64()),
                "gender_source_value": [p[2] for p in people],
            }
        ),
        files["person"],
    )
    pq.write_table(
        pa.table(
            {
                "person_id": pa.array([p[0] for p in people], pa.int64()),
                "departement": [p[3] for p in people],
            }
        ),
        files["person_qi"],
    )
    conditions = [(p[0], code) for p in people for code in p[4]]
    pq.write_table(
        pa.table(
            {
                "person_id": pa.array([c[0] for c in conditions], pa.int64()),
                "condition_source_value": pa.array([c[1] for c in conditions], pa.string()),
            }
        ),
        files["condition_occurrence"],
    )
    return files


def test_a_k_anonymous_extract_is_released_unchanged(
    database: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    people = [(i, 1960, "female", "75", ["E11"]) for i in range(1, 6)]
    result = protect(database.cursor(), _staged(tmp_path / "s", people), QUASI_IDENTIFIERS, 5)
    assert not result.report.release_blocked
    assert result.suppressed == () and not result.generalised
    assert result.report.k_anonymity == 5


def test_generalising_the_year_of_birth_reaches_k_before_any_suppression(
    database: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    people = [(i, 1960 + i % 4, "male", "13", []) for i in range(1, 21)]
    result = protect(database.cursor(), _staged(tmp_path / "s", people), QUASI_IDENTIFIERS, 10)
    assert result.generalised and result.suppressed == ()
    assert result.report.generalisation == ("year_of_birth:5-year bands",)
    assert result.report.k_anonymity == 20 and not result.report.release_blocked


def test_a_few_outliers_are_suppressed_and_reported(
    database: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    people = [(i, 1960, "male", "13", []) for i in range(1, 41)]
    people.append((99, 1930, "female", "2A", ["Q87.4"]))  # one person alone in their class
    result = protect(database.cursor(), _staged(tmp_path / "s", people), QUASI_IDENTIFIERS, 5)
    assert result.suppressed == (99,)
    report = result.report
    assert report.suppressed_records == 1 and report.records == 40
    assert report.k_anonymity == 40 and not report.release_blocked
    assert report.prosecutor_risk == pytest.approx(1 / 40)


def test_release_is_blocked_when_reaching_k_would_suppress_too_many(
    database: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    people = [(i, 1940 + 7 * i, "female", str(10 + i), []) for i in range(1, 11)]
    result = protect(database.cursor(), _staged(tmp_path / "s", people), QUASI_IDENTIFIERS, 3)
    assert result.report.release_blocked
    assert result.suppressed == ()
    assert result.report.records_below_k > MAX_SUPPRESSED_SHARE * result.report.records


def test_rare_diagnosis_codes_are_quasi_identifiers(
    database: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    people = [(i, 1960, "male", "13", ["E11"]) for i in range(1, 31)]
    people[0] = (1, 1960, "male", "13", ["E11", "E75.2"])  # a code only one person has
    files = _staged(tmp_path / "s", people)
    with_rare = protect(database.cursor(), files, QUASI_IDENTIFIERS, 2)
    without = protect(database.cursor(), files, ("year_of_birth", "sex", "departement"), 2)
    assert with_rare.report.records_below_k == 0 and with_rare.suppressed == (1,)
    assert without.suppressed == ()
