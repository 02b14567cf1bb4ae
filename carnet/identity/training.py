"""Weight training and batch dedupe of the index, on DuckDB.

Splink's own training cannot use our comparison functions (it compiles comparisons to SQL), and the
weights must mean the same thing online and in batch, so we train the way Splink does with our
functions: u from random pairs, then m and the share of matches by expectation-maximisation over the
comparison vectors of blocked pairs (u fixed), and the prior rescaled from blocked to random pairs.
DuckDB does the set work: the blocking self-join that yields candidate pairs of a whole index, and
the counting of comparison patterns; Spark does the same at scale (:mod:`carnet.identity.engines`,
the same SQL and the same comparison functions on both).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carnet.identity.distinct import (
    Successor,
    ins_differ,
    no_successor,
    other_first_names_differ,
)
from carnet.identity.engines import DedupeEngine, DuckDBEngine
from carnet.identity.matching import MatchModel, vetoed_gamma

__all__ = ["DedupeEngine", "DedupePair", "DuckDBEngine", "TrainingReport", "dedupe", "train"]

Gamma = tuple[int | None, ...]


@dataclass(frozen=True)
class TrainingReport:
    """What a training run saw and produced."""

    records: int
    blocked_pairs: int
    random_pairs: int
    iterations: int
    lambda_blocked: float
    model: MatchModel


def estimate_u(
    model: MatchModel,
    records: Sequence[Mapping[str, Any]],
    pairs: int,
    rng: random.Random,
) -> dict[str, list[float]]:
    """u per level: level frequencies among random pairs (almost all non-matches)."""
    counts = {c.name: [0.0] * len(c.levels) for c in model.comparisons}
    if len(records) < 2:
        return {k: list(v) for k, v in model.u.items()}
    for _ in range(pairs):
        a, b = rng.sample(range(len(records)), 2)
        for c, level in zip(model.comparisons, model.gamma(records[a], records[b]), strict=True):
            if level is not None:
                counts[c.name][level] += 1
    return {name: _smooth(values) for name, values in counts.items()}


def _smooth(values: list[float]) -> list[float]:
    # One pseudo-count per level keeps unseen levels finite (log2 of 0 is not a weight).
    total = sum(values) + len(values)
    return [(v + 1) / total for v in values]


def em(
    model: MatchModel,
    patterns: Mapping[Gamma, int],
    u: Mapping[str, Sequence[float]],
    *,
    lambda_start: float = 0.1,
    iterations: int = 30,
    tolerance: float = 1e-5,
) -> tuple[dict[str, list[float]], float, int]:
    """Expectation-maximisation of m and the share of matches, u fixed (as Splink does)."""
    m = {k: list(v) for k, v in model.m.items()}
    lam = lambda_start
    names = [c.name for c in model.comparisons]
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 - the count is reported
        new_m = {name: [0.0] * len(m[name]) for name in names}
        total_p = 0.0
        total = 0
        for gamma, count in patterns.items():
            pm, pu = lam, 1 - lam
            for name, level in zip(names, gamma, strict=True):
                if level is not None:
                    pm *= m[name][level]
                    pu *= u[name][level]
            p = pm / (pm + pu) if pm + pu > 0 else 0.0
            total_p += p * count
            total += count
            for name, level in zip(names, gamma, strict=True):
                if level is not None:
                    new_m[name][level] += p * count
        new_lam = total_p / total if total else lam
        change = abs(new_lam - lam)
        for name in names:
            smoothed = [v + 1e-3 for v in new_m[name]]
            s = sum(smoothed)
            probs = [v / s for v in smoothed]
            change = max(change, *(abs(a - b) for a, b in zip(probs, m[name], strict=True)))
            m[name] = probs
        lam = min(max(new_lam, 1e-9), 1 - 1e-9)
        if change < tolerance:
            break
    return m, lam, done


def train(
    model: MatchModel,
    records: Mapping[str, Mapping[str, Any]],
    keys_of: Callable[[Mapping[str, Any]], Iterable[str]],
    *,
    engine: DedupeEngine | None = None,
    random_pairs: int = 200_000,
    seed: int = 0,
) -> TrainingReport:
    """Train ``model`` on ``records`` (id -> record) blocked by ``keys_of``."""
    engine = engine or DuckDBEngine()
    ids = list(records)
    rng = random.Random(seed)  # noqa: S311 - sampling pairs, not secrets
    values = [records[i] for i in ids]
    u = estimate_u(model, values, random_pairs, rng)
    pairs = engine.compared_pairs(
        records, ((i, k) for i in ids for k in keys_of(records[i])), model.gamma
    )
    patterns = engine.pattern_counts([g for _, _, g in pairs])
    m, lam_blocked, iterations = em(model, patterns, u)
    n = len(ids)
    all_pairs = max(n * (n - 1) / 2, 1.0)
    lam_random = min(max(lam_blocked * len(pairs) / all_pairs, 1e-12), 0.5)
    trained = model.with_parameters(m, u, lam_random)
    return TrainingReport(n, len(pairs), random_pairs, iterations, lam_blocked, trained)


@dataclass(frozen=True)
class DedupePair:
    """Two records of one index that may be the same person."""

    a: str
    b: str
    weight: float
    outcome: str  # "link" or "review"


def dedupe(
    model: MatchModel,
    records: Mapping[str, Mapping[str, Any]],
    keys_of: Callable[[Mapping[str, Any]], Iterable[str]],
    link: float,
    review: float,
    *,
    engine: DedupeEngine | None = None,
    distinct: Collection[frozenset[str]] = (),
    successor: Successor = no_successor,
) -> list[DedupePair]:
    """Pairs scoring at least ``review``, best first, each with its decision.

    ``distinct`` holds pairs already known to be different people (dismissed by a human): they are
    not listed again, and count as certainly different people for the rule below; so do pairs
    whose valid INS differ (``successor`` tells which NIR replaced an NIA, the one exception).
    A pair is a link when it scores at least ``link``, no strict trait disagrees, the other first
    names do not disagree, and no two of the records plausibly either of them are certainly
    different people (a copy without a birth place or an INS that fits both of two homonyms goes
    to review, as online matching does).
    """
    engine = engine or DuckDBEngine()
    pairs = engine.compared_pairs(
        records, ((i, k) for i in records for k in keys_of(records[i])), model.gamma
    )
    cache: dict[Gamma, tuple[float, bool]] = {}
    plausible: dict[str, set[str]] = {}
    excluded: set[tuple[str, str]] = set()
    scored: list[tuple[str, str, float, bool]] = []
    for a, b, gamma in pairs:
        found = cache.get(gamma)
        if found is None:
            found = cache[gamma] = (model.weight_of(gamma), vetoed_gamma(model, gamma))
        weight, veto = found
        if frozenset((a, b)) in distinct or ins_differ(records[a], records[b], successor):
            excluded.add((a, b))
            excluded.add((b, a))
            continue
        if veto:
            excluded.add((a, b))
            excluded.add((b, a))
        elif weight >= review:
            plausible.setdefault(a, set()).add(b)
            plausible.setdefault(b, set()).add(a)
        if weight >= review:
            doubt = veto or other_first_names_differ(records[a], records[b])
            scored.append((a, b, weight, doubt))

    def conflicted(x: str, y: str) -> bool:
        # The pair and everything plausibly either of them: if two of those are certainly
        # different people, the pair cannot be decided alone (a copy without a birth place that
        # fits both of two homonyms).
        around = sorted({x, y} | plausible.get(x, set()) | plausible.get(y, set()))
        return any((p, q) in excluded for i, p in enumerate(around) for q in around[i + 1 :])

    out = [
        DedupePair(
            a,
            b,
            weight,
            "link" if weight >= link and not doubt and not conflicted(a, b) else "review",
        )
        for a, b, weight, doubt in scored
    ]
    out.sort(key=lambda p: (-p.weight, p.a, p.b))
    return out
