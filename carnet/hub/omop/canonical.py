"""The extract's hash: one canonical text of every released row, whatever engine wrote it.

Each value is written in one form by its CDM type (integers and DECIMAL(18,6) as decimal text,
dates as ISO dates, timestamps as microseconds since the epoch in UTC, NULL as ``\\N``), rows in
the order of their key, in chunks of ``CHUNK`` rows whose SHA-256 digests are hashed again per
table, then tables in name order. DuckDB reads both engines' output to compute it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import duckdb

from carnet.hub.omop.cdm import TABLES

CHUNK = 50_000


def _text(column: str, kind: str) -> str:
    if kind == "int":
        expr = f"CAST(CAST({column} AS BIGINT) AS VARCHAR)"
    elif kind == "num":
        expr = f"CAST(CAST({column} AS DECIMAL(18,6)) AS VARCHAR)"
    elif kind == "date":
        expr = f"strftime(CAST({column} AS DATE), '%Y-%m-%d')"
    elif kind == "ts":
        expr = f"CAST(epoch_us(CAST({column} AS TIMESTAMP)) AS VARCHAR)"
    else:
        expr = f"CAST({column} AS VARCHAR)"
    return f"coalesce({expr}, '\\N')"


def table_digest(
    con: duckdb.DuckDBPyConnection, source: str, table: str, columns: tuple[str, ...]
) -> tuple[int, str]:
    """(rows, digest) of one released table read from ``source`` (a table or a read_parquet)."""
    cdm = TABLES[table]
    line = " || chr(31) || ".join(_text(c, cdm.type_of(c)) for c in columns)
    # execute, not sql(): a relation binds the statement once more before running it (a third of
    # an extract's hashing time on small extracts)
    rows = con.execute(
        f"""
        WITH lines AS (
            SELECT row_number() OVER (ORDER BY {cdm.key}) - 1 AS n, {line} AS line FROM {source}
        )
        SELECT n // {CHUNK} AS chunk, count(*), sha256(string_agg(line, chr(10) ORDER BY n))
        FROM lines GROUP BY chunk ORDER BY chunk
        """
    ).fetchall()
    total = sum(int(r[1]) for r in rows)
    digest = hashlib.sha256("\n".join(str(r[2]) for r in rows).encode()).hexdigest()
    return total, digest


def extract_hash(
    extract: Path, columns: Mapping[str, tuple[str, ...]]
) -> tuple[str, dict[str, int]]:
    """The hash of an extract (a DuckDB file or a folder of Parquet folders) and its row counts."""
    counts: dict[str, int] = {}
    outer = hashlib.sha256()
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        if extract.suffix == ".duckdb":
            con.execute("ATTACH ? AS extract (READ_ONLY)", [str(extract)])
        for table in sorted(columns):
            if extract.suffix == ".duckdb":
                source = f"extract.{table}"
            else:
                pattern = str(extract / table / "*.parquet").replace("'", "''")
                source = f"read_parquet('{pattern}')"
            rows, digest = table_digest(con, source, table, columns[table])
            counts[table] = rows
            outer.update(f"{table}\t{','.join(columns[table])}\t{rows}\t{digest}\n".encode())
    return outer.hexdigest(), counts
