"""Disclosure control of one table of aggregates, computed in SQL on DuckDB.

A researcher asks for a table over their workspace: a SELECT, the column that makes its rows,
optionally the column that makes its columns (none for a chart's series), and a statistic (a
count of records, or the sum or mean of a value column). One statement builds the full grid of
cells (empty combinations included), each cell's contributors, sum, largest values and negatives,
then each check's flag as ACRO defines it, then the released value: suppressed cells first, then
counts rounded (profiles.py states the order and the tie rule). Totals are recomputed from the
released cells, never from the true ones.

Check names are ACRO's (``MinimumThresholdCheck``, ``PresenceOfZeroCheck``, ``NKCheck``,
``PPercentCheck``) so the record in acro_record.py reads the same in SACRO-Viewer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import duckdb

from carnet.hub.disclosure.profiles import DisclosureProfile

AggFunc = Literal["count", "sum", "mean"]
THRESHOLD = "MinimumThresholdCheck"
ZEROS = "PresenceOfZeroCheck"
NK = "NKCheck"
P_RATIO = "PPercentCheck"
CHECKS_BY_STATISTIC: dict[str, tuple[str, ...]] = {
    "count": (THRESHOLD, ZEROS),
    "sum": (THRESHOLD, NK, P_RATIO),
    "mean": (THRESHOLD, NK, P_RATIO),
}
SINGLE_COLUMN = "all"  # the one column of a table without a column variable (a chart's series)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class TableRequestError(ValueError):
    """A table request Carnet cannot compute (a bad column name or statistic)."""


@dataclass(frozen=True)
class TableRequest:
    """One table of aggregates over the workspace: ``source_sql`` is a SELECT the workspace
    accepts; ``rows``, ``columns`` and ``value`` name its columns."""

    source_sql: str
    rows: str
    columns: str | None = None
    value: str | None = None
    statistic: AggFunc = "count"

    def checked(self) -> TableRequest:
        names = [self.rows, self.columns, self.value]
        for name in names:
            if name is not None and not _IDENTIFIER.match(name):
                raise TableRequestError("column names are plain identifiers")
        if self.statistic not in CHECKS_BY_STATISTIC:
            raise TableRequestError("the statistic is count, sum or mean")
        if self.statistic != "count" and self.value is None:
            raise TableRequestError("a sum or a mean needs a value column")
        return self


@dataclass(frozen=True)
class Cell:
    """One cell: its true count and statistic (kept inside the workspace), the checks it
    failed, and what leaves (``None``: suppressed)."""

    row: str
    column: str
    count: int
    statistic: float | None
    failed: frozenset[str]
    released: float | None


@dataclass(frozen=True)
class ControlledTable:
    """A table after automatic disclosure control, row-major."""

    request: TableRequest
    profile: DisclosureProfile
    row_levels: tuple[str, ...]
    column_levels: tuple[str, ...]
    cells: tuple[Cell, ...]
    row_totals: dict[str, float]
    column_totals: dict[str, float]
    grand_total: float | None

    @property
    def checks(self) -> tuple[str, ...]:
        return CHECKS_BY_STATISTIC[self.request.statistic]

    @property
    def suppressed(self) -> int:
        return sum(1 for cell in self.cells if cell.released is None)

    @property
    def status(self) -> str:
        """ACRO's words: ``pass`` when no cell was disclosive, ``review`` when some were
        suppressed (the checkers see which and why)."""
        return "review" if self.suppressed else "pass"

    def cell(self, row: str, column: str = SINGLE_COLUMN) -> Cell:
        for cell in self.cells:
            if cell.row == row and cell.column == column:
                return cell
        raise KeyError((row, column))

    def mask(self, check: str) -> list[list[bool]]:
        """For one check, whether each cell failed it (rows x columns)."""
        width = len(self.column_levels)
        flags = [check in cell.failed for cell in self.cells]
        return [flags[i : i + width] for i in range(0, len(flags), width)]

    def released_rows(self) -> list[dict[str, Any]]:
        """The table that leaves: one dict per row, suppressed cells as None, with totals."""
        out: list[dict[str, Any]] = []
        width = len(self.column_levels)
        for index, row in enumerate(self.row_levels):
            cells = self.cells[index * width : (index + 1) * width]
            line: dict[str, Any] = {self.request.rows: row}
            line.update({cell.column: cell.released for cell in cells})
            if self.request.statistic == "count":
                line["total"] = self.row_totals.get(row, 0)
            out.append(line)
        if self.request.statistic == "count":
            totals: dict[str, Any] = {self.request.rows: "total"}
            totals.update({c: self.column_totals.get(c, 0) for c in self.column_levels})
            totals["total"] = self.grand_total
            out.append(totals)
        return out


def _quoted(name: str) -> str:
    return f'"{name}"'


def _cells_sql(request: TableRequest, profile: DisclosureProfile) -> str:
    column = f"CAST({_quoted(request.columns)} AS VARCHAR)" if request.columns else "'all'"
    value = f"CAST({_quoted(request.value)} AS DOUBLE)" if request.value else "NULL::DOUBLE"
    checks = CHECKS_BY_STATISTIC[request.statistic]
    statistic = {"count": "NULL::DOUBLE", "sum": "total", "mean": "mean"}[request.statistic]
    nk_n = profile.nk_n or 2
    # Each check's flag as ACRO 1.0.2 defines it: thresholds on the count of contributors; the
    # N-K and p-ratio rules on the cell's values, undefined (so flagged where present) when the
    # table holds a negative value; an empty cell has no value to dominate.
    flags = {
        THRESHOLD: "n < $min_count",
        ZEROS: "($zeros AND n = 0)",
        NK: (
            "CASE WHEN any_negative THEN negatives > 0"
            " WHEN $nk_on AND n > 0 AND total <> 0 THEN top_n / total >= $nk_k ELSE false END"
        ),
        P_RATIO: (
            "CASE WHEN any_negative THEN negatives > 0 WHEN NOT $p_on OR n = 0 THEN false"
            " WHEN top1 = 0 THEN (total - top_2) < $p_ratio"
            " ELSE (total - top_2) / top1 < $p_ratio END"
        ),
    }
    active = {name: flags[name] for name in checks}
    if request.statistic == "count":
        kept = {
            "none": "n",
            "nearest": "(2 * n + $base) // (2 * $base) * $base",
            "midpoint6": "CASE WHEN n = 0 THEN 0 ELSE (n + 5) // 6 * 6 - 3 END",
        }[profile.rounding]
    else:
        kept = statistic
    flag_columns = ", ".join(f'{sql} AS "{name}"' for name, sql in active.items())
    any_flag = " OR ".join(f'"{name}"' for name in active)
    return f"""
WITH src AS (
    SELECT CAST({_quoted(request.rows)} AS VARCHAR) AS r, {column} AS c, {value} AS v
    FROM ({request.source_sql}) AS researcher_query
),
kept_src AS (SELECT * FROM src WHERE r IS NOT NULL AND c IS NOT NULL),
row_levels AS (SELECT DISTINCT r FROM kept_src),
column_levels AS (SELECT DISTINCT c FROM kept_src),
agg AS (
    SELECT r, c, count(*) AS n, sum(v) AS total, avg(v) AS mean, max(v) AS top1,
        list_sum(list_slice(list_sort(list(v), 'DESC'), 1, {int(nk_n)})) AS top_n,
        list_sum(list_slice(list_sort(list(v), 'DESC'), 1, 2)) AS top_2,
        count(*) FILTER (WHERE v < 0) AS negatives
    FROM kept_src GROUP BY r, c
),
grid AS (
    SELECT rl.r, cl.c, coalesce(agg.n, 0) AS n, agg.total, agg.mean, agg.top1, agg.top_n,
        agg.top_2, coalesce(agg.negatives, 0) AS negatives,
        max(coalesce(agg.negatives, 0)) OVER () > 0 AS any_negative
    FROM row_levels AS rl CROSS JOIN column_levels AS cl
    LEFT JOIN agg ON agg.r = rl.r AND agg.c = cl.c
),
flagged AS (SELECT *, {flag_columns} FROM grid)
SELECT r, c, n, {statistic} AS statistic, {", ".join(f'"{n}"' for n in active)},
    CASE WHEN {any_flag} THEN NULL ELSE CAST({kept} AS DOUBLE) END AS released
FROM flagged ORDER BY r, c
"""


def control_table(
    conn: duckdb.DuckDBPyConnection, request: TableRequest, profile: DisclosureProfile
) -> ControlledTable:
    """Compute ``request`` over ``conn`` (the workspace's read-only connection) and apply
    ``profile``: the grid, each cell's failed checks, the released values and totals."""
    request = request.checked()
    checks = CHECKS_BY_STATISTIC[request.statistic]
    params = {
        "min_count": profile.min_count,
        "zeros": profile.zeros_disclosive,
        "nk_on": profile.nk_k is not None,
        "nk_k": profile.nk_k if profile.nk_k is not None else 1.0,
        "p_on": profile.p_ratio is not None,
        "p_ratio": profile.p_ratio if profile.p_ratio is not None else 0.0,
        "base": profile.rounding_base,
    }
    sql = _cells_sql(request, profile)
    used = {name: value for name, value in params.items() if f"${name}" in sql}
    rows = conn.execute(sql, used).fetchall()
    cells = tuple(
        Cell(
            row=str(r[0]),
            column=str(r[1]),
            count=int(r[2]),
            statistic=None if r[3] is None else float(r[3]),
            failed=frozenset(name for name, flag in zip(checks, r[4:-1], strict=True) if flag),
            released=None if r[-1] is None else float(r[-1]),
        )
        for r in rows
    )
    row_levels = tuple(dict.fromkeys(cell.row for cell in cells))
    column_levels = tuple(dict.fromkeys(cell.column for cell in cells))
    row_totals, column_totals, grand = _totals(conn, cells)
    return ControlledTable(
        request,
        profile,
        row_levels,
        column_levels,
        cells,
        row_totals,
        column_totals,
        grand,
    )


def _totals(
    conn: duckdb.DuckDBPyConnection, cells: tuple[Cell, ...]
) -> tuple[dict[str, float], dict[str, float], float | None]:
    """Margins from the released cells only (suppressed ones count as nothing)."""
    if not cells:
        return {}, {}, None
    values = [(cell.row, cell.column, cell.released) for cell in cells]
    rows = conn.execute(
        """
        SELECT r, c, GROUPING(r) AS gr, GROUPING(c) AS gc, coalesce(sum(released), 0)
        FROM (SELECT unnest($r) AS r, unnest($c) AS c, unnest($v) AS released)
        GROUP BY GROUPING SETS ((r), (c), ())
        """,
        {
            "r": [v[0] for v in values],
            "c": [v[1] for v in values],
            "v": [v[2] for v in values],
        },
    ).fetchall()
    by_row: dict[str, float] = {}
    by_column: dict[str, float] = {}
    grand: float | None = None
    for r, c, gr, gc, total in rows:
        if gr == 0:
            by_row[str(r)] = float(total)
        elif gc == 0:
            by_column[str(c)] = float(total)
        else:
            grand = float(total)
    return by_row, by_column, grand
