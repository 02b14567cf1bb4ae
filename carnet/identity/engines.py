"""The engines of the batch run (training and dedupe): DuckDB in process, Spark for large indexes.

Splink's pattern: one interface, one implementation per engine, the same model on both. Both run
the same SQL (:data:`PAIRS_SQL`, :data:`PATTERNS_SQL`) for the set work, the blocking self-join and
the counting of comparison vectors, and both compare records with the same Python comparison
functions (:meth:`carnet.identity.matching.MatchModel.gamma`): DuckDB in this process, Spark on its
executors (``mapPartitions``), so a pair gets the same levels, weight and decision on either engine.

Spark runs in local mode (``local[2]``) in tests and on a workstation, against a cluster URL in
production; a session lives only as long as its engine (``with open_engine("spark") as e: ...``),
binds to the loopback interface in local mode, has no UI and logs warnings only.
"""

from __future__ import annotations

import os
import pickle
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Self

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

__all__ = [
    "ENGINES",
    "PAIRS_SQL",
    "PATTERNS_SQL",
    "DedupeEngine",
    "DuckDBEngine",
    "EngineUnavailable",
    "SparkEngine",
    "open_engine",
]

Gamma = tuple[int | None, ...]
Record = Mapping[str, Any]
ComparedPair = tuple[str, str, Gamma]

ENGINES = ("duckdb", "spark")

# Distinct (a, b), a < b, of record ids sharing a blocking key (table block_keys(id, k)).
PAIRS_SQL = (
    "SELECT DISTINCT a.id AS a, b.id AS b FROM block_keys a JOIN block_keys b "
    "ON a.k = b.k AND a.id < b.id"
)
# How many pairs have each comparison vector (table gammas(g0, g1, ...)).
PATTERNS_SQL = "SELECT {columns}, count(*) AS n FROM gammas GROUP BY ALL"


class EngineUnavailable(RuntimeError):  # noqa: N818 - reads as a state
    """The engine cannot run here (a missing package, no Java, an unreachable cluster)."""


class DedupeEngine(Protocol):
    """Set operations of the batch run."""

    def candidate_pairs(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Distinct (a, b), a < b, of record ids that share a blocking key, sorted."""
        ...

    def compared_pairs(
        self,
        records: Mapping[str, Record],
        keys: Iterable[tuple[str, str]],
        gamma: Callable[[Record, Record], Gamma],
    ) -> list[ComparedPair]:
        """Every candidate pair with its comparison vector, sorted by (a, b)."""
        ...

    def pattern_counts(self, gammas: Sequence[Gamma]) -> dict[Gamma, int]:
        """How many pairs have each comparison vector."""
        ...

    def close(self) -> None:
        """Release the engine (a Spark session stops)."""
        ...


def _split(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    ids, values = [], []
    for ident, key in keys:
        ids.append(ident)
        values.append(key)
    return {"id": ids, "k": values}


def arrow_table(columns: Mapping[str, Sequence[Any]]) -> Any:
    """The Arrow table both engines read: ``g*`` columns are levels (int32), ``rec`` a pickled
    record (binary), the others strings."""

    def kind(name: str) -> Any:
        if name.startswith("g"):
            return pa.int32()
        return pa.binary() if name == "rec" else pa.string()

    schema = pa.schema([(c, kind(c)) for c in columns])
    return pa.table({c: list(v) for c, v in columns.items()}, schema=schema)


def _gamma_columns(gammas: Sequence[Gamma]) -> dict[str, list[int | None]]:
    width = len(gammas[0])
    return {f"g{i}": [g[i] for g in gammas] for i in range(width)}


def _pattern_order(item: tuple[Gamma, int]) -> tuple[int, ...]:
    return tuple(-1 if level is None else level for level in item[0])


class _SqlEngine(ABC):
    """What both engines share: the SQL, the sorting, the context-manager life."""

    @abstractmethod
    def query(
        self, sql: str, tables: Mapping[str, Mapping[str, Sequence[Any]]]
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` over in-memory ``tables`` (name -> column -> values; string or int columns)."""

    def candidate_pairs(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        rows = self.query(PAIRS_SQL, {"block_keys": _split(keys)})
        return sorted((str(a), str(b)) for a, b in rows)

    def compared_pairs(
        self,
        records: Mapping[str, Record],
        keys: Iterable[tuple[str, str]],
        gamma: Callable[[Record, Record], Gamma],
    ) -> list[ComparedPair]:
        return [(a, b, gamma(records[a], records[b])) for a, b in self.candidate_pairs(keys)]

    def pattern_counts(self, gammas: Sequence[Gamma]) -> dict[Gamma, int]:
        if not gammas:
            return {}
        columns = _gamma_columns(gammas)
        rows = self.query(PATTERNS_SQL.format(columns=", ".join(columns)), {"gammas": columns})
        # Sorted, so that what sums over the patterns (EM) adds in the same order on every engine.
        counts = sorted(((tuple(r[:-1]), int(r[-1])) for r in rows), key=_pattern_order)
        return dict(counts)

    @abstractmethod
    def close(self) -> None:
        """Release the connection or session."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DuckDBEngine(_SqlEngine):
    """In-process DuckDB; records are compared in this process."""

    def __init__(self) -> None:
        self.con = duckdb.connect()

    def query(
        self, sql: str, tables: Mapping[str, Mapping[str, Sequence[Any]]]
    ) -> list[tuple[Any, ...]]:
        for name, columns in tables.items():
            self.con.register(name, arrow_table(columns))
        try:
            return [tuple(r) for r in self.con.execute(sql).fetchall()]
        finally:
            for name in tables:
                self.con.unregister(name)

    def close(self) -> None:
        self.con.close()


def _compare_partition(
    gamma: Callable[[Record, Record], Gamma],
) -> Callable[[Iterable[Any]], Iterator[ComparedPair]]:
    def run(rows: Iterable[Any]) -> Iterator[ComparedPair]:
        for row in rows:
            yield row.a, row.b, gamma(pickle.loads(row.ra), pickle.loads(row.rb))  # noqa: S301

    return run


class SparkEngine(_SqlEngine):
    """PySpark (local mode or a cluster); records are compared on the executors."""

    def __init__(self, master: str = "local[2]", *, partitions: int = 8) -> None:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise EngineUnavailable(
                "pyspark is not installed (pip install 'carnet[spark]'; it needs Java 17)"
            ) from None

        local = master.startswith("local")
        builder = (
            SparkSession.builder.master(master)
            .appName("carnet-identity")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
        if local:
            # Loopback only (tests forbid other sockets), and the executors run this interpreter
            # so they import the same carnet and comparison functions.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = (
                builder.config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.pyspark.python", sys.executable)
                .config("spark.pyspark.driver.python", sys.executable)
            )
        # A session this process already runs (a notebook, a test fixture) is used, not stopped.
        self._owned = SparkSession.getActiveSession() is None
        try:
            # A session of its own on the process's Spark context: its SQL settings and temporary
            # views are the engine's, and another user of the context (the hub's extracts, a
            # notebook) neither sees nor changes them.
            self.spark = builder.getOrCreate().newSession()
        except Exception as exc:  # noqa: BLE001 - no JVM, no java on the PATH, cluster unreachable
            raise EngineUnavailable(
                f"cannot start Spark at {master} ({type(exc).__name__}); is Java 17 installed?"
            ) from None
        self.spark.sparkContext.setLogLevel("WARN")
        self.spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
        self.spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
        self.partitions = partitions

    def _frame(self, columns: Mapping[str, Sequence[Any]]) -> Any:
        return self.spark.createDataFrame(arrow_table(columns))

    def query(
        self, sql: str, tables: Mapping[str, Mapping[str, Sequence[Any]]]
    ) -> list[tuple[Any, ...]]:
        for name, columns in tables.items():
            self._frame(columns).createOrReplaceTempView(name)
        try:
            return [tuple(r) for r in self.spark.sql(sql).collect()]
        finally:
            for name in tables:
                self.spark.catalog.dropTempView(name)

    def compared_pairs(
        self,
        records: Mapping[str, Record],
        keys: Iterable[tuple[str, str]],
        gamma: Callable[[Record, Record], Gamma],
    ) -> list[ComparedPair]:
        self._frame(_split(keys)).createOrReplaceTempView("block_keys")
        ids = list(records)
        recs = self._frame({"id": ids, "rec": [pickle.dumps(records[i]) for i in ids]})
        recs.createOrReplaceTempView("records")
        joined = self.spark.sql(
            f"SELECT p.a, p.b, ra.rec AS ra, rb.rec AS rb FROM ({PAIRS_SQL}) p "
            "JOIN records ra ON ra.id = p.a JOIN records rb ON rb.id = p.b"
        )
        try:
            out = joined.rdd.mapPartitions(_compare_partition(gamma)).collect()
        finally:
            self.spark.catalog.dropTempView("block_keys")
            self.spark.catalog.dropTempView("records")
        return sorted(out, key=lambda t: (t[0], t[1]))

    def close(self) -> None:
        if self._owned:
            self.spark.stop()


def open_engine(name: str = "duckdb", *, spark_master: str = "local[2]") -> _SqlEngine:
    """An engine by name (``duckdb`` or ``spark``); use it as a context manager."""
    if name == "duckdb":
        return DuckDBEngine()
    if name == "spark":
        return SparkEngine(spark_master)
    raise ValueError(f"engine {name!r} is not known; choose one of {', '.join(ENGINES)}")
