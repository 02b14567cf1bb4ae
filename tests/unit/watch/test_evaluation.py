"""The detector on a small generated world, on a seed not used to tune it (benchmarks/watch.py
tuned on seed 1): the ROC AUC stays above a floor."""

from __future__ import annotations

from carnet.watch.evaluation import measure
from carnet.watch.scenarios import generate

HELD_OUT_SEED = 5


def test_detection_auc_on_a_held_out_seed_is_above_the_floor() -> None:
    world = generate(HELD_OUT_SEED, professionals=150, days=8, scored_days=3, rate=20.0)
    measures = measure(world, seed=HELD_OUT_SEED)
    assert measures.incidents >= 5
    assert measures.auc_unexplained >= 0.9
    assert measures.auc_user_days >= 0.9
    assert measures.recall >= 0.6


def test_the_same_seed_makes_the_same_world() -> None:
    first, second = generate(3, professionals=30, days=3), generate(3, professionals=30, days=3)
    assert first.accesses == second.accesses
    assert first.incidents == second.incidents
