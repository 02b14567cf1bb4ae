"""Scores of unexplained episodes: an unsupervised detector, then the rules of known scenarios.

scikit-learn's IsolationForest is fitted on the unexplained episodes of the scan itself (no
labels: violations are rare and unlabelled in a real log) and ranks each by how easily it is
isolated; that rank (0 to 1) is the score's base, to which the rules of ``carnet.watch.rules``
add their weights. Explained episodes are not scored. Episodes then group into one alert per
user and day, ranked by their best episode, with the reasons of its suspect episodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from carnet.watch.features import Episode
from carnet.watch.rules import matched

TREES = 100
SUSPECT_SCORE = 1.0  # an episode this high is named in its alert
MAX_PATIENTS_NAMED = 50  # an alert names at most this many records (a mass export names more)


@dataclass(frozen=True)
class Scored:
    episode: Episode
    score: float
    reasons: tuple[str, ...]


@dataclass
class Candidate:
    """One user's day as an alert candidate: its best score, reasons and suspect records."""

    actor: str
    day: date
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    unexplained: int = 0


def score(episodes: Sequence[Episode], *, seed: int = 0, rules: bool = True) -> list[Scored]:
    """Every unexplained episode with its score and reasons (explained ones are left out);
    ``rules=False`` gives the unsupervised detector's rank alone (for the evaluation)."""
    todo = [e for e in episodes if e.explanation is None]
    if not todo:
        return []
    matrix = np.array([e.features for e in todo], dtype=float)
    if len(todo) >= 8:
        # Imported when a scan runs: scikit-learn takes ~2 s to import, which every `carnet`
        # process (each CLI command, the server's start) would otherwise pay.
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=TREES, random_state=seed)
        forest.fit(matrix)
        abnormal = -forest.score_samples(matrix)
        ranks = abnormal.argsort().argsort() / max(1, len(todo) - 1)
    else:  # too few to learn what is usual: the rules alone decide
        ranks = np.zeros(len(todo))
    out = []
    for episode, base in zip(todo, ranks, strict=True):
        met = matched(episode) if rules else []
        reasons = tuple(r.reason for r in met) or ("unusual",)
        out.append(Scored(episode, float(base) + sum(r.weight for r in met), reasons))
    return out


def candidates(scored: Sequence[Scored]) -> list[Candidate]:
    """One candidate per user and day, best first; named records are its suspect episodes."""
    found: dict[tuple[str, date], Candidate] = {}
    ranked = sorted(scored, key=lambda s: -s.score)
    for s in ranked:
        e = s.episode
        cand = found.get((e.actor, e.day))
        if cand is None:
            cand = found[(e.actor, e.day)] = Candidate(e.actor, e.day, s.score)
        cand.unexplained += 1
        if s.score >= SUSPECT_SCORE or not cand.patients:
            if len(cand.patients) < MAX_PATIENTS_NAMED:
                cand.patients.append(e.patient_id)
                cand.event_ids.extend(e.event_ids)
            for reason in s.reasons:
                if reason not in cand.reasons:
                    cand.reasons.append(reason)
    return sorted(found.values(), key=lambda c: -c.score)


def within_budget(cands: Sequence[Candidate], per_day: int) -> list[Candidate]:
    """The best ``per_day`` candidates of each day (the officer's daily budget)."""
    by_day: dict[date, list[Candidate]] = defaultdict(list)
    for c in sorted(cands, key=lambda c: -c.score):
        if len(by_day[c.day]) < per_day:
            by_day[c.day].append(c)
    return [c for day in sorted(by_day) for c in by_day[day]]
