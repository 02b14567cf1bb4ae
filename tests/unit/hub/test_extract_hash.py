"""The extract's hash is the documented canonical text of its rows (carnet/hub/omop/canonical.py),
recomputed here in Python: a researcher can check an extract's ``output_hash`` without Carnet, and
a change in how DuckDB is asked for it cannot change its value unnoticed."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from carnet.hub.omop.canonical import extract_hash

COLUMNS = ("measurement_id", "measurement_date", "measurement_datetime", "value_as_number")
ROWS = [  # stored out of key order, with a NULL of each kind
    (30, date(2022, 3, 21), datetime(2022, 3, 21, 8, 0, 0, 250), Decimal("6.5")),
    (10, date(1999, 12, 31), None, Decimal("-0.000001")),
    (20, None, datetime(1970, 1, 1, 0, 0, 1), None),
]


def _canonical(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, Decimal):
        return f"{value:.6f}"
    if isinstance(value, datetime):
        return str((value.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // _MICRO)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1) - datetime(1970, 1, 1)


def _expected_hash() -> str:
    lines = ["\x1f".join(_canonical(v) for v in row) for row in sorted(ROWS)]
    chunk = hashlib.sha256("\n".join(lines).encode()).hexdigest()  # one chunk: under 50,000 rows
    table = hashlib.sha256(chunk.encode()).hexdigest()
    entry = f"measurement\t{','.join(COLUMNS)}\t{len(ROWS)}\t{table}\n"
    return hashlib.sha256(entry.encode()).hexdigest()


def test_the_extract_hash_is_the_documented_canonical_text_of_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "project.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE measurement (measurement_id BIGINT, measurement_date DATE, "
            "measurement_datetime TIMESTAMP, value_as_number DECIMAL(18,6))"
        )
        con.executemany("INSERT INTO measurement VALUES (?, ?, ?, ?)", ROWS)
    assert extract_hash(path, {"measurement": COLUMNS}) == (_expected_hash(), {"measurement": 3})
