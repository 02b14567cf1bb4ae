"""Tests for weight training (EM on DuckDB) and batch dedupe, on synthetic French identities."""

from __future__ import annotations

from collections import Counter

from carnet.demo.identities import generate_identities
from carnet.identity.blocking import blocking_keys
from carnet.identity.matching import identity_model
from carnet.identity.training import DuckDBEngine, dedupe, em, train


def _records() -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    people, copies = generate_identities(600, seed=3)
    records: dict[str, dict[str, object]] = {}
    truth: dict[str, str] = {}
    for i, item in enumerate([*people, *copies]):
        records[f"r{i}"] = item.record
        truth[f"r{i}"] = item.truth
    return records, truth


def test_duckdb_engine_pairs_and_patterns() -> None:
    engine = DuckDBEngine()
    pairs = engine.candidate_pairs(
        [("a", "k1"), ("b", "k1"), ("c", "k2"), ("b", "k2"), ("a", "k2")]
    )
    assert sorted(pairs) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert engine.pattern_counts([(0, None), (0, None), (1, 2)]) == {(0, None): 2, (1, 2): 1}
    assert engine.pattern_counts([]) == {}


def test_em_recovers_a_clear_separation() -> None:
    model = identity_model()
    patterns = {(0, 0, 0, 0, 0): 90, (5, 5, 3, 1, 2): 900, (0, 5, 3, 0, 2): 10}
    m, lam, iterations = em(model, patterns, model.u)
    assert 0.08 < lam < 0.1
    assert m["family_name"][0] > 0.9
    assert m["birth_date"][0] > 0.9
    assert iterations >= 1


def test_training_gives_sensible_weights_and_dedupe_finds_duplicates() -> None:
    records, truth = _records()
    report = train(identity_model(), records, blocking_keys, random_pairs=20_000)
    model = report.model
    assert report.records == len(records)
    assert report.blocked_pairs > 0
    assert 0 < model.lambda_ < 0.01
    for name in ("family_name", "given_names", "birth_date"):
        weights = [model.m[name][i] / model.u[name][i] for i in (0, -1)]
        assert weights[0] > 1 > weights[1], name
    found = [p for p in dedupe(model, records, blocking_keys, 12.0, 0.0) if p.outcome == "link"]
    right = sum(truth[p.a] == truth[p.b] for p in found)
    true_pairs = sum(n * (n - 1) // 2 for n in Counter(truth.values()).values())
    assert right / len(found) > 0.99
    assert right / true_pairs > 0.8
