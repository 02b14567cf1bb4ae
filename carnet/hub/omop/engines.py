"""The two engines of the one pipeline: the same SQL over the same staged Parquet files.

Each engine registers the staged tables as ``stage_<table>`` and the suppressed people as
``stage_suppressed``, runs one SELECT per released table (``release_sql``: permitted columns,
suppressed people removed, generalisation applied, explicit sort and null order) and writes the
result: DuckDB into one database file per project, Spark (local mode in tests, a cluster master
URL in production) into one Parquet folder per table. Spark stays an optional import.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from carnet.hub.omop.cdm import SQL_TYPES, TABLES
from carnet.hub.omop.risk import YEAR_BAND

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BIRTH_DETAIL = ("month_of_birth", "day_of_birth", "birth_datetime")


def release_sql(table: str, columns: tuple[str, ...], *, generalised: bool) -> str:
    """The SELECT that releases ``columns`` of one staged table (ANSI SQL both engines run)."""
    cdm = TABLES[table]
    exprs = []
    for column in columns:
        if generalised and table == "person" and column == "year_of_birth":
            exprs.append(f"year_of_birth - year_of_birth % {YEAR_BAND} AS year_of_birth")
        elif generalised and table == "person" and column in BIRTH_DETAIL:
            exprs.append(f"CAST(NULL AS {SQL_TYPES[cdm.type_of(column)]}) AS {column}")
        else:
            exprs.append(column)
    return (
        f"SELECT {', '.join(exprs)} FROM stage_{table} "
        "WHERE person_id NOT IN (SELECT person_id FROM stage_suppressed) "
        f"ORDER BY {cdm.key} ASC NULLS LAST"
    )


class Engine(Protocol):
    """Runs the release SQL over the staged files and writes the extract."""

    name: str

    def write(
        self, staged: Mapping[str, Path], releases: Mapping[str, str], target: Path
    ) -> Path: ...


def write_suppressed(folder: Path, suppressed: tuple[int, ...]) -> Path:
    path = folder / "suppressed.parquet"
    pq.write_table(pa.table({"person_id": pa.array(sorted(suppressed), pa.int64())}), path)
    return path


class DuckdbEngine:
    """The default engine: one DuckDB database file per project."""

    name = "duckdb"

    def write(self, staged: Mapping[str, Path], releases: Mapping[str, str], target: Path) -> Path:
        path = target.with_suffix(".duckdb")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        with duckdb.connect(str(path)) as con:
            con.execute("SET TimeZone = 'UTC'")
            for name, file in staged.items():
                quoted = str(file).replace("'", "''")
                con.execute(
                    f"CREATE TEMP VIEW stage_{name} AS SELECT * FROM read_parquet('{quoted}')"
                )
            for table, sql in releases.items():
                con.execute(f"CREATE TABLE {table} AS {sql}")
        return path


_spark_lock = threading.Lock()


def spark_session(master: str = "local[1]") -> SparkSession:
    """A session of the hub's own, in UTC, on the process's Spark context (started once: ~10 s,
    bound to loopback). Its SQL settings and temporary views are its own: an identity engine or a
    notebook sharing the context keeps its partitions and time zone."""
    from pyspark.sql import SparkSession  # optional: only the Spark engine needs it

    with _spark_lock:
        builder: Any = SparkSession.builder
        shared: SparkSession = (
            builder.master(master)
            .appName("carnet-hub-extract")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
    session = shared.newSession()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    session.conf.set("spark.sql.shuffle.partitions", "1")
    return session


class SparkEngine:
    """PySpark, writing one Parquet folder per table (``<target>-parquet/<table>/``)."""

    name = "spark"

    def __init__(self, master: str = "local[1]") -> None:
        self.master = master

    def write(self, staged: Mapping[str, Path], releases: Mapping[str, str], target: Path) -> Path:
        spark = spark_session(self.master)
        root = target.with_name(target.name + "-parquet")
        shutil.rmtree(root, ignore_errors=True)
        for name, file in staged.items():
            spark.read.parquet(str(file)).createOrReplaceTempView(f"stage_{name}")
        for table, sql in releases.items():
            # one sorted file per table: coalesce keeps the sorted partitions' order
            spark.sql(sql).coalesce(1).write.parquet(str(root / table))
        return root


def engine_named(name: str, *, spark_master: str = "local[1]") -> Engine:
    if name == "duckdb":
        return DuckdbEngine()
    if name == "spark":
        return SparkEngine(spark_master)
    raise ValueError(f"unknown engine {name!r} (duckdb or spark)")
