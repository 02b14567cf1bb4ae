"""`carnet import` killed with SIGKILL at random moments, then run again, stores what a clean run does.

A real subprocess is killed (os.kill, SIGKILL), not an exception raised in-process: the point is
that a Bundle's writes and the record that it was imported commit together or not at all, whatever
instant the process dies. Ids minted by the server differ between runs, so stores are compared
through canonical content digests (see ``_canonical_digests``), not by id.

Each process is forked from a parent that has already imported carnet (tests/support/forkserver.py)
and runs ``python -m carnet import ...`` (or the $import job) from there: a real process with its
own connections, killed by a real SIGKILL, without the second or two of interpreter start-up that
made most of each run. Every store starts as a copy of the session's migrated one (SQLite file or
PostgreSQL template), so a run is its start-up and then the import itself.

One clean run per backend is the reference of both tests (a $import job stores what ``carnet
import`` does from the same files). Runs are measured in the CPU time of their process, which a
busy machine does not stretch as it stretches wall time: the clean run's, and a second run's on
the finished store, which only starts up and skips every file; the difference is the import's own
work. A store's kills then fall at sorted points drawn uniformly over that work, each resumed run
killed once it has used its start-up and the work up to its point, so that each kill finds an
import with work left (one that finds the import finished ends the store's series, uncounted).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from carnet.app import build_services
from carnet.fhir.store_scan import iter_current, raw_bodies
from tests.conftest import CORPUS, make_settings
from tests.support.forkserver import ForkedChild, ForkServer
from tests.support.migrated_store import PostgresTemplate, SqliteTemplate

# Both backends: a crash must leave either backend's transactions whole.
# Slow: dozens of real `carnet import` processes killed and rerun.
pytestmark = [pytest.mark.both_backends, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
CARNET = ("carnet",)  # python -m carnet
BUNDLES = 2  # the smallest Synthea patient Bundles, so that the test stays short
NDJSON_LINES = 200  # Observations without ids: every line is a server-minted create
BATCH_SIZE = 50
KILLS = 10  # real kills (the process was still running) per backend, at least
KILLS_PER_STORE = 5  # kills in a row on one store before the run that is left to finish
REFINEMENT_ROUNDS = 6  # longer than the deepest reference chain (EOB -> Claim -> Encounter -> ...)


@pytest.fixture(scope="module")
def import_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crash-import")
    patients = sorted(
        (p for p in (CORPUS / "synthea").glob("*.json.gz") if "Information" not in p.name),
        key=lambda p: (p.stat().st_size, p.name),
    )[:BUNDLES]
    for path in patients:
        (folder / path.name).write_bytes(path.read_bytes())
    lines = (
        orjson.dumps(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
                "valueQuantity": {"value": i, "unit": "cm"},
            }
        )
        for i in range(NDJSON_LINES)
    )
    (folder / "Observation.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def _env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(
        CARNET_DATA_DIR=str(data_dir), CARNET_DATABASE_URL=database_url, PYTHONPATH=str(REPO_ROOT)
    )
    return env


def _start(forks: ForkServer, env: dict[str, str], module: str, *args: str) -> ForkedChild:
    """``python -m <module> <args>`` in the repository, its errors kept in <data dir>.log."""
    log = Path(env["CARNET_DATA_DIR"] + ".log")
    return forks.start(module, list(args), env=env, cwd=REPO_ROOT, stderr=log)


def _log_tail(env: dict[str, str]) -> str:
    return Path(env["CARNET_DATA_DIR"] + ".log").read_text(errors="replace")[-2000:]


def _import_args(folder: Path) -> tuple[str, ...]:
    return (*CARNET, "import", str(folder), "--batch-size", str(BATCH_SIZE))


def _run_to_end(forks: ForkServer, env: dict[str, str], *args: str) -> float:
    """Run the command to its end; the CPU seconds it used."""
    process = _start(forks, env, *args)
    assert process.wait(timeout=600) == 0, _log_tail(env)
    assert process.cpu is not None
    return process.cpu


def _run_and_kill(
    forks: ForkServer, env: dict[str, str], args: tuple[str, ...], after: float
) -> bool:
    """Start an import and SIGKILL it once it has used ``after`` CPU seconds
    (``ForkedChild.kill_after_cpu``); False if it ended before, which it must have done well."""
    process = _start(forks, env, *args)
    if process.kill_after_cpu(after):
        return True
    assert process.returncode == 0, _log_tail(env)
    return False


def _relabel(node: Any, labels: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in labels:
                out[key] = labels[value]
            else:
                out[key] = _relabel(value, labels)
        return out
    if isinstance(node, list):
        return [_relabel(item, labels) for item in node]
    return node


def _canonical_digests(bodies: dict[str, dict[str, Any]]) -> Counter[str]:
    """A multiset of digests, one per current resource, independent of server-minted ids.

    A resource's label starts as its type, then is refined a few times into the hash of its body
    without ``id`` and ``meta``, each reference replaced by its target's label (as graph
    isomorphism tests refine colours): two stores with the same content, however their ids were
    minted, give the same multiset; a Bundle stored twice gives every digest of it twice.
    """
    stripped = {
        key: {k: v for k, v in body.items() if k not in ("id", "meta")}
        for key, body in bodies.items()
    }
    labels = {key: key.split("/")[0] for key in stripped}
    for _ in range(REFINEMENT_ROUNDS):
        labels = {
            key: hashlib.sha256(
                orjson.dumps(_relabel(body, labels), option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            for key, body in stripped.items()
        }
    return Counter(labels.values())


def _store_contents(data_dir: Path, database_url: str) -> tuple[Counter[str], Counter[str]]:
    """(canonical digests of every current body, number of stored versions per type)."""
    services = build_services(make_settings(data_dir, database_url), migrate=False)
    try:
        with services.fhir.repo.unit(write=False) as unit:
            bodies = {
                f"{r.res_type}/{r.res_id}": r.body
                for batch in iter_current(unit)
                for r in batch
                if r.body is not None
            }
            versions = Counter(res_type for res_type, _, _, _ in raw_bodies(unit))
    finally:
        services.close()
    return _canonical_digests(bodies), versions


@dataclass(frozen=True)
class CleanRun:
    """A store imported by one uninterrupted ``carnet import``: its contents and timings."""

    digests: Counter[str]  # canonical digests of every current body (``_canonical_digests``)
    versions: Counter[str]  # stored versions per type
    length: float  # CPU seconds of the import, start-up included
    start_up: float  # CPU seconds of a rerun on the finished store: start-up, every file skipped


@pytest.fixture(scope="module")
def clean_runs() -> dict[str, CleanRun]:
    """The clean run of each backend, made by the first test that needs it (``_clean_run``)."""
    return {}


def _clean_run(
    backend: str,
    forks: ForkServer,
    folder: Path,
    request: pytest.FixtureRequest,
) -> CleanRun:
    runs: dict[str, CleanRun] = request.getfixturevalue("clean_runs")
    if backend not in runs:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        data_dir = factory.mktemp(f"clean-{backend}") / "data"
        env = _migrated_store(backend, request, data_dir, "crash_clean")
        length = _run_to_end(forks, env, *_import_args(folder))
        digests, versions = _store_contents(data_dir, env["CARNET_DATABASE_URL"])
        assert sum(digests.values()) >= NDJSON_LINES + BUNDLES * 50
        start_up = _run_to_end(forks, env, *_import_args(folder))
        runs[backend] = CleanRun(digests, versions, length, start_up)
    return runs[backend]


def _migrated_store(
    backend: str, request: pytest.FixtureRequest, data_dir: Path, name: str
) -> dict[str, str]:
    """The environment of a command on a store of its own, already migrated: a copy of the
    session's migrated SQLite file in ``data_dir``, or a PostgreSQL database ``name`` cloned
    from the migrated template. Killing a migration is tests/unit/db/test_migrations_are_atomic.py's
    subject; here every run, and so every kill moment, is the import's."""
    if backend == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("migrated_sqlite")
        template.copy_into(data_dir)
        return _env(data_dir, "")
    cluster: PostgresTemplate = request.getfixturevalue("migrated_postgres")
    return _env(data_dir, cluster.clone(name))


def test_import_killed_at_any_point_then_rerun_equals_clean_run(
    backend: str,
    forks: ForkServer,
    import_folder: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    clean = _clean_run(backend, forks, import_folder, request)
    # The import's own CPU time; at least half the run's, should the two measures disagree badly.
    work = max(clean.length - clean.start_up, clean.length / 2)

    kills = stores = 0
    while kills < KILLS:
        assert stores < 3 * KILLS, f"too few kills landed before the imports ended (seed {seed})"
        stores += 1
        data_dir = tmp_path / f"killed{stores}"
        env = _migrated_store(backend, request, data_dir, f"crash_{seed}_{stores}")
        # Points spread over the whole import, in order: each run resumes where the last kill
        # left it, so it is killed after its start-up and the work up to the next point.
        points = sorted(rng.uniform(0, work) for _ in range(KILLS_PER_STORE))
        moments = [
            round(clean.start_up + point - previous, 2)
            for previous, point in pairwise([0.0, *points])
        ]
        args = _import_args(import_folder)
        for moment in moments:
            if not _run_and_kill(forks, env, args, moment):
                break  # the import ended: later runs would find nothing left to do
            kills += 1
        _run_to_end(forks, env, *_import_args(import_folder))
        digests, versions = _store_contents(data_dir, env["CARNET_DATABASE_URL"])
        assert versions == clean.versions, (
            f"kills at {moments} CPU s (seed {seed}): versions differ"
        )
        extra, missing = digests - clean.digests, clean.digests - digests
        assert not extra and not missing, (
            f"kills at {moments} CPU s (seed {seed}): {sum(extra.values())} resources more and "
            f"{sum(missing.values())} fewer than a clean run"
        )
        _run_to_end(forks, env, *CARNET, "audit", "verify")


JOB = ("tests.support.import_job",)  # python -m tests.support.import_job
JOB_KILLS = 5


def _job_store(
    backend: str, request: pytest.FixtureRequest, folder: Path, data_dir: Path, name: str
) -> dict[str, str]:
    """A fresh migrated store whose import directory holds the files to import."""
    env = _migrated_store(backend, request, data_dir, name)
    (data_dir / "imports").mkdir(parents=True)  # PostgreSQL: no SQLite copy made data_dir
    for path in folder.iterdir():
        (data_dir / "imports" / path.name).write_bytes(path.read_bytes())
    return env


def test_import_job_killed_at_any_point_then_resumed_equals_clean_run(
    backend: str,
    forks: ForkServer,
    import_folder: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The same for a $import job: its process killed, the status poll of a new one resumes it;
    the end is what a clean ``carnet import`` of the same files stores."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    clean = _clean_run(backend, forks, import_folder, request)

    env = _job_store(backend, request, import_folder, tmp_path / "killed", f"job_{seed}_k")
    # Each run resumes the job, so a later run has less left to do: moments within the first half
    # of a clean run's CPU time make at least the first two kills land, and five of them still
    # reach every phase. (Not offset by the CLI rerun's start-up as above: a job's runs differ
    # from that rerun, and drawn that way too few of their kills landed once.)
    moments = [round(rng.uniform(0, clean.length / 2), 2) for _ in range(JOB_KILLS)]
    kills = sum(_run_and_kill(forks, env, JOB, moment) for moment in moments)
    _run_to_end(forks, env, *JOB)
    digests, versions = _store_contents(tmp_path / "killed", env["CARNET_DATABASE_URL"])
    assert kills >= 2, f"kills at {moments} CPU s (seed {seed}): the job ended before most"
    assert versions == clean.versions, f"kills at {moments} CPU s (seed {seed}): versions differ"
    assert digests == clean.digests, f"kills at {moments} CPU s (seed {seed}): contents differ"
    _run_to_end(forks, env, *CARNET, "audit", "verify")
