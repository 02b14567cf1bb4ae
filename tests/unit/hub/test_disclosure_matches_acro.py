"""Differential test: the same generated tables through ACRO 1.0.2 (the oracle) and through
Carnet's SQL checks give identical cell masks, check by check."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from carnet.hub.disclosure.profiles import ACRO_DEFAULT
from carnet.hub.disclosure.tables import TableRequest, control_table

TABLES = 45


def _random_frame(rng: np.random.Generator) -> pd.DataFrame:
    records = int(rng.integers(5, 150))
    rows = [f"r{i}" for i in range(int(rng.integers(2, 5)))]
    columns = [f"c{i}" for i in range(int(rng.integers(2, 4)))]
    values = rng.integers(0, 50, records).astype(float)
    if rng.random() < 0.5:  # a dominant contributor somewhere
        values[int(rng.integers(0, records))] = float(rng.integers(500, 5000))
    if rng.random() < 0.2:  # cells made of zeros
        values[rng.random(records) < 0.3] = 0.0
    return pd.DataFrame(
        {
            "a": rng.choice(rows, records, p=_skewed(rng, len(rows))),
            "b": rng.choice(columns, records),
            "v": values,
        }
    )


def _skewed(rng: np.random.Generator, size: int) -> np.ndarray:
    weights = rng.random(size) ** 3 + 0.01
    return weights / weights.sum()


Masks = dict[tuple[str, str], set[str]]  # (row, column) -> the checks that cell fails


def _acro_masks(acro: ModuleType, frame: pd.DataFrame, statistic: str) -> Masks:
    session: Any = acro.ACRO(suppress=False)
    if statistic == "count":
        session.crosstab(frame.a, frame.b)
    else:
        session.crosstab(frame.a, frame.b, values=frame.v, aggfunc=statistic)
    (output,) = session.results.results.values()
    cells: Masks = {}
    for column, by_row in output.outcome.to_dict().items():
        for row, text in by_row.items():
            failed = {name.strip() for name in str(text).split(";") if name.strip()}
            cells[(str(row), str(column))] = failed - {"ok"}
    return cells


def _on_a_shallow_stack(
    call: Callable[[ModuleType, pd.DataFrame, str], Masks],
    acro: ModuleType,
    frame: pd.DataFrame,
    statistic: str,
) -> Masks:
    """``call(frame, statistic)`` run in a fresh thread. ACRO's ``crosstab`` records its caller with
    ``inspect.stack()``, which reads the source and looks up the module of every frame above it:
    under pytest and xdist that is some sixty frames, some from exec'd code that no module owns
    (each such lookup scans ``sys.modules``). A thread's stack is a handful of known frames; the
    oracle's answer is the same."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(call, acro, frame, statistic).result()


@pytest.fixture(scope="module")
def quiet_acro() -> Iterator[ModuleType]:
    """ACRO (a declared dev dependency), imported here rather than at the top: importing it pulls
    in statsmodels, SciPy and matplotlib, about 3 CPU-seconds that every xdist worker paid while
    collecting, though one worker runs this test."""
    acro = importlib.import_module("acro")
    logging.getLogger("acro").setLevel(logging.WARNING)
    # ACRO formats its tables into debug f-strings even when nobody logs them: half its time here
    # went to pandas fitting each table to the terminal. Tiny reprs; the masks are unchanged.
    with pd.option_context("display.max_columns", 1, "display.max_rows", 1, "display.width", 40):
        yield acro


# ACRO 1.0.2 itself calls pandas in ways pandas warns about; the warnings are not ours.
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
@pytest.mark.slow  # reason: ACRO builds each table with pandas, about 0.3 s a table here
def test_carnet_cell_masks_equal_acros_on_random_tables(quiet_acro: ModuleType) -> None:
    rng = np.random.default_rng(20261203)
    conn = duckdb.connect(":memory:")
    compared = 0
    for index in range(TABLES):
        frame = _random_frame(rng)
        statistic = ("count", "sum", "mean")[index % 3]
        conn.register("generated", frame)
        request = TableRequest(
            "SELECT * FROM generated",
            rows="a",
            columns="b",
            value=None if statistic == "count" else "v",
            statistic=statistic,  # type: ignore[arg-type]
        )
        table = control_table(conn, request, ACRO_DEFAULT)
        expected = _on_a_shallow_stack(_acro_masks, quiet_acro, frame, statistic)
        assert set(expected) == {(c.row, c.column) for c in table.cells}, index
        for cell in table.cells:
            oracle = expected[(cell.row, cell.column)] & set(table.checks)
            assert cell.failed == oracle, (index, statistic, cell)
            compared += 1
        conn.unregister("generated")
    assert compared > TABLES * 4
