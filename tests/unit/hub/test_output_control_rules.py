"""Output control's own rules: suppress first, then round; totals from the released cells; the
tie rule; midpoint 6; the automatic gates; the ACRO results.json record."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.hub.disclosure.acro_record import output_entry, results_document
from carnet.hub.disclosure.gates import check_columns, check_file
from carnet.hub.disclosure.profiles import (
    ACRO_DEFAULT,
    OPENSAFELY,
    DisclosureProfile,
    profile_named,
    rounded,
)
from carnet.hub.disclosure.tables import (
    THRESHOLD,
    ControlledTable,
    TableRequest,
    TableRequestError,
    control_table,
)


@pytest.fixture(scope="module")
def database() -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory DuckDB for the module: opening one costs ~25 ms of CPU, a connection to it
    (``cursor()``) ~1 ms. Each table is built on a connection of its own, in temporary tables
    that no other connection sees and that go with it."""
    with duckdb.connect(":memory:") as db:
        yield db


def _counts_table(
    database: duckdb.DuckDBPyConnection,
    counts: dict[tuple[str, str], int],
    profile: DisclosureProfile,
) -> ControlledTable:
    """A table whose cells hold exactly ``counts`` records."""
    with database.cursor() as conn:
        conn.execute("CREATE TEMP TABLE person (sex VARCHAR, region VARCHAR)")
        for (sex, region), n in counts.items():
            conn.execute("INSERT INTO person SELECT ?, ? FROM range(?)", [sex, region, n])
        request = TableRequest("SELECT * FROM person", rows="sex", columns="region")
        return control_table(conn, request, profile)


def test_a_true_count_of_seven_never_leaves_as_five(database: duckdb.DuckDBPyConnection) -> None:
    table = _counts_table(
        database, {("F", "75"): 7, ("M", "75"): 8, ("F", "13"): 12, ("M", "13"): 6}, OPENSAFELY
    )
    assert table.cell("F", "75").released is None
    assert table.cell("M", "13").released is None
    assert table.cell("M", "75").released == 10  # 8 is not redacted: rounded up to 10
    assert all(cell.released != 5 for cell in table.cells)


def test_counts_over_seven_are_rounded_to_the_nearest_five(
    database: duckdb.DuckDBPyConnection,
) -> None:
    table = _counts_table(
        database, {("F", "75"): 12, ("M", "75"): 13, ("F", "13"): 23, ("M", "13"): 8}, OPENSAFELY
    )
    assert [c.released for c in table.cells] == [25.0, 10.0, 10.0, 15.0]


def test_totals_are_recomputed_from_the_released_cells(database: duckdb.DuckDBPyConnection) -> None:
    table = _counts_table(
        database, {("F", "75"): 12, ("M", "75"): 13, ("F", "13"): 3, ("M", "13"): 8}, OPENSAFELY
    )
    # F/13 (3) is suppressed; F total = 10 (its released 12 -> 10), not 15 or 12
    assert table.row_totals == {"F": 10.0, "M": 25.0}
    assert table.column_totals == {"13": 10.0, "75": 25.0}
    assert table.grand_total == 35.0
    released = table.released_rows()
    assert released[-1] == {"sex": "total", "13": 10.0, "75": 25.0, "total": 35.0}


def test_rounding_ties_go_up(database: duckdb.DuckDBPyConnection) -> None:
    ten = DisclosureProfile("ten", 1, False, "nearest", 10, None, None, None)
    assert rounded(15, ten) == 20
    assert rounded(14, ten) == 10
    assert rounded(25, ten) == 30
    table = _counts_table(database, {("F", "75"): 15, ("M", "75"): 25}, ten)
    assert [c.released for c in table.cells] == [20.0, 30.0]


def test_midpoint_six_releases_the_middle_of_each_block_of_six(
    database: duckdb.DuckDBPyConnection,
) -> None:
    profile = profile_named("opensafely-midpoint6")
    assert [rounded(n, profile) for n in (8, 12, 13, 18, 19)] == [9, 9, 15, 15, 21]
    table = _counts_table(database, {("F", "75"): 8, ("M", "75"): 13, ("F", "13"): 7}, profile)
    assert table.cell("F", "75").released == 9
    assert table.cell("M", "75").released == 15
    assert table.cell("F", "13").released is None


def test_an_empty_cell_is_suppressed_under_both_presets(
    database: duckdb.DuckDBPyConnection,
) -> None:
    for profile in (OPENSAFELY, ACRO_DEFAULT):
        table = _counts_table(database, {("F", "75"): 30, ("M", "13"): 30}, profile)
        assert table.cell("F", "13").count == 0
        assert table.cell("F", "13").released is None


def test_a_table_request_with_a_bad_column_name_is_refused(
    database: duckdb.DuckDBPyConnection,
) -> None:
    with database.cursor() as conn, pytest.raises(TableRequestError):
        control_table(conn, TableRequest("SELECT 1 AS a", rows='a"; DROP'), OPENSAFELY)
    with database.cursor() as conn, pytest.raises(TableRequestError):
        control_table(conn, TableRequest("SELECT 1 AS a", rows="a", statistic="sum"), OPENSAFELY)


def test_a_column_naming_a_person_fails_the_gate() -> None:
    result = check_file("table.csv", b"person_id,count\n1,10\n", OPENSAFELY)
    assert not result.passed
    assert "names a person" in result.reasons[0]
    assert not check_columns(["sex", "patient_id"]).passed
    assert check_columns(["sex", "region"]).passed
    assert not check_columns(["visit_person_id"]).passed


def test_an_omop_source_value_column_is_not_taken_for_a_person() -> None:
    assert check_columns(["gender_source_value", "year_of_birth"]).passed


def test_file_type_size_and_rows_are_gated() -> None:
    assert not check_file("model.pkl", b"x", OPENSAFELY).passed
    assert not check_file("t.csv", b"a\n" + b"1\n" * (OPENSAFELY.max_rows + 1), OPENSAFELY).passed
    big = b"a\n" + b"9" * (OPENSAFELY.max_bytes + 1)
    assert "larger than" in " ".join(check_file("t.csv", big, OPENSAFELY).reasons)
    assert check_file("t.csv", b"sex,count\nF,10\n", OPENSAFELY).passed


def test_the_record_lists_each_suppressed_cell_in_acros_results_format(
    database: duckdb.DuckDBPyConnection,
) -> None:
    table = _counts_table(
        database, {("F", "75"): 3, ("M", "75"): 30, ("F", "13"): 30, ("M", "13"): 30}, OPENSAFELY
    )
    entry = output_entry("output_0", table, "output_0.csv")
    document = results_document({"output_0": entry})
    assert set(document) == {"version", "tool", "results"}
    assert entry["status"] == "review"
    sdc = entry["files"][0]["sdc"]
    assert sdc["cells"][THRESHOLD] == [[0, 1]]  # row F (0), column 75 (1)
    assert sdc["summary"][THRESHOLD] == 1
    assert entry["outcome"]["75"]["F"] == f"{THRESHOLD}; PresenceOfZeroCheck; " or entry["outcome"][
        "75"
    ]["F"].startswith(THRESHOLD)
    assert entry["outcome"]["13"]["M"] == "ok"


@settings(max_examples=15, deadline=None)
@given(counts=st.lists(st.integers(0, 60), min_size=1, max_size=10))
def test_released_counts_are_never_small_and_totals_add_up(
    database: duckdb.DuckDBPyConnection, counts: list[int]
) -> None:
    names = [f"g{index:02d}" for index in range(len(counts))]
    with database.cursor() as conn:
        conn.execute(  # n + 1 rows per group: each level exists, with a true count of n + 1
            "CREATE TEMP TABLE t AS SELECT g AS grp FROM"
            " (SELECT unnest(?::VARCHAR[]) AS g, unnest(?::INTEGER[]) AS n),"
            " generate_series(1, n + 1)",
            [names, counts],
        )
        table = control_table(conn, TableRequest("SELECT grp FROM t", rows="grp"), OPENSAFELY)
    for index, n in enumerate(counts):
        cell = table.cell(f"g{index:02d}")
        true_count = n + 1
        assert cell.count == true_count
        if true_count <= 7:
            assert cell.released is None
        else:
            assert cell.released is not None
            assert cell.released % 5 == 0 and cell.released >= 10
            assert abs(cell.released - true_count) <= 2
    released = [c.released for c in table.cells if c.released is not None]
    assert table.grand_total == sum(released)


def test_a_charts_series_is_controlled_like_a_table(database: duckdb.DuckDBPyConnection) -> None:
    with database.cursor() as conn:
        conn.execute("CREATE TEMP TABLE visits (month VARCHAR)")
        conn.executemany("INSERT INTO visits VALUES (?)", [("2026-01",)] * 12 + [("2026-02",)] * 3)
        request = TableRequest("SELECT * FROM visits", rows="month")
        table = control_table(conn, request, OPENSAFELY)
    assert [(c.row, c.column, c.released) for c in table.cells] == [
        ("2026-01", "all", 10.0),
        ("2026-02", "all", None),
    ]
