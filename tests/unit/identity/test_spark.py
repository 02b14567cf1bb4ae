"""The batch run on Spark (local mode) gives exactly what DuckDB gives: the same candidate pairs, the
same comparison vectors, the same trained weights and the same dedupe decisions."""

from __future__ import annotations

import pytest

from carnet.demo.identities import generate_identities
from carnet.hub.omop.engines import spark_session
from carnet.identity.blocking import blocking_keys
from carnet.identity.engines import DuckDBEngine, SparkEngine, open_engine
from carnet.identity.matching import identity_model
from carnet.identity.training import dedupe, train

# Slow: Spark in local mode (the session-wide ``spark`` fixture of tests/conftest.py).
pytestmark = pytest.mark.slow


def _records() -> dict[str, dict[str, object]]:
    people, copies = generate_identities(300, seed=11)
    return {f"r{i:04d}": item.record for i, item in enumerate([*people, *copies])}


def test_spark_runs_the_same_sql(spark: SparkEngine) -> None:
    keys = [("a", "k1"), ("b", "k1"), ("c", "k2"), ("b", "k2"), ("a", "k2"), ("d", "k3")]
    assert spark.candidate_pairs(keys) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert spark.pattern_counts([(0, None), (0, None), (1, 2)]) == {(0, None): 2, (1, 2): 1}
    assert spark.pattern_counts([]) == {}


def test_spark_dedupe_is_identical_to_duckdb(spark: SparkEngine) -> None:
    records = _records()
    keys = [(i, k) for i in records for k in blocking_keys(records[i])]
    model = identity_model()
    with DuckDBEngine() as duck:
        local = duck.compared_pairs(records, keys, model.gamma)
        trained = train(model, records, blocking_keys, random_pairs=5_000, engine=duck).model
        expected = dedupe(trained, records, blocking_keys, 10.0, 0.0, engine=duck)
    assert spark.compared_pairs(records, keys, model.gamma) == local
    on_spark = train(model, records, blocking_keys, random_pairs=5_000, engine=spark).model
    assert on_spark.parameters() == trained.parameters()
    found = dedupe(trained, records, blocking_keys, 10.0, 0.0, engine=spark)
    assert found == expected
    # A real run: links and pairs left to review, not an empty agreement.
    assert sum(p.outcome == "link" for p in found) > 100
    assert any(p.outcome == "review" for p in found)


def test_engines_sharing_the_spark_context_keep_their_own_sql_settings(spark: SparkEngine) -> None:
    """The hub's extracts and an engine opened later run on this process's Spark context, each
    in a session of its own: neither changes the partitions or the time zone another one uses."""
    shuffle, zone = "spark.sql.shuffle.partitions", "spark.sql.session.timeZone"
    zone_before = spark.spark.conf.get(zone)
    hub = spark_session()
    with open_engine("spark") as later:
        assert later.spark.sparkContext is spark.spark.sparkContext  # one JVM, not two
        assert hub.sparkContext is spark.spark.sparkContext
        assert (later.spark.conf.get(shuffle), hub.conf.get(shuffle)) == ("8", "1")
        assert hub.conf.get(zone) == "UTC"
        assert (spark.spark.conf.get(shuffle), spark.spark.conf.get(zone)) == ("4", zone_before)
    assert not spark.spark.sparkContext._jsc.sc().isStopped()  # the later engine did not own it
    assert spark.query("SELECT 1", {}) == [(1,)]


def test_unknown_engine() -> None:
    with pytest.raises(ValueError, match="not known"):
        open_engine("hadoop")
