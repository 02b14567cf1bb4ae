"""Measures of the detector on a generated world: ROC AUC and precision and recall within the
officer's daily budget of alerts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from carnet.watch.features import episodes, histories
from carnet.watch.scenarios import World
from carnet.watch.scorer import SUSPECT_SCORE, candidates, score, within_budget

BUDGET_PER_1000 = 20  # alerts a day per 1,000 professionals (issue 16)


@dataclass(frozen=True)
class Measures:
    episodes: int
    unexplained: int
    incidents: int
    auc_episodes: float  # every episode of the days scored; explained ones rank lowest
    auc_unexplained: float  # among unexplained episodes only: the hard part
    auc_unexplained_forest: float  # the same, IsolationForest alone (no rules)
    auc_user_days: float  # one candidate per user and day
    budget_per_day: int
    alerts: int
    precision: float
    recall: float  # incidents (a user's day with a violation) that reached the budget


def measure(world: World, *, seed: int = 0, min_score: float = SUSPECT_SCORE) -> Measures:
    """Run features, scorer and rules over ``world`` and compare with its injected truth; the
    queue keeps, as a scan does, the day's best candidates within the budget that score at least
    ``min_score`` (the ``watch_min_score`` setting's default)."""
    days = world.scored_days
    eps = episodes(world.accesses, world.evidence, histories(world.accesses, min(days)), days)
    scored = score(eps, seed=seed)
    by_key = {(s.episode.actor, s.episode.patient_id, s.episode.day): s.score for s in scored}
    truth = world.violating
    keys = [(e.actor, e.patient_id, e.day) for e in eps]
    labels = [k in truth for k in keys]
    values = [by_key.get(k, -1.0) for k in keys]
    unexplained = [
        (lab, v) for lab, v, e in zip(labels, values, eps, strict=True) if e.explanation is None
    ]
    forest = score(eps, seed=seed, rules=False)
    forest_labels = [
        (s.episode.actor, s.episode.patient_id, s.episode.day) in truth for s in forest
    ]
    bad_days = {(actor, day) for actor, day, _ in world.incidents}
    cands = candidates(scored)
    per_day = max(1, math.ceil(BUDGET_PER_1000 * world.professionals / 1000))
    kept = within_budget([c for c in cands if c.score >= min_score], per_day)
    hits = sum(1 for c in kept if (c.actor, c.day) in bad_days)
    found = {(c.actor, c.day) for c in kept} & bad_days
    return Measures(
        episodes=len(eps),
        unexplained=len(unexplained),
        incidents=len(bad_days),
        auc_episodes=_auc(labels, values),
        auc_unexplained=_auc([lab for lab, _ in unexplained], [v for _, v in unexplained]),
        auc_unexplained_forest=_auc(forest_labels, [s.score for s in forest]),
        auc_user_days=_auc([(c.actor, c.day) in bad_days for c in cands], [c.score for c in cands]),
        budget_per_day=per_day,
        alerts=len(kept),
        precision=hits / len(kept) if kept else 0.0,
        recall=len(found) / len(bad_days) if bad_days else 0.0,
    )


def _auc(labels: list[bool], values: list[float]) -> float:
    if len(set(labels)) < 2:
        return float("nan")
    # Imported when a measure is taken, as the scorer's forest is: scikit-learn (and SciPy behind
    # it) takes seconds to import, which every importer of this module would pay.
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, values))
