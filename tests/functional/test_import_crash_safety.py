"""`carnet import` killed with SIGKILL at random moments, then run again, stores what a clean run does.

A real subprocess is killed (os.kill, SIGKILL), not an exception raised in-process: the point is
that a Bundle's writes and the record that it was imported commit together or not at all, whatever
instant the process dies. Ids minted by the server differ between runs, so stores are compared
through canonical content digests (see ``_canonical_digests``), not by id.

Each process is forked from a parent that has already imported carnet (tests/support/forkserver.py)
and runs ``python -m carnet import ...`` (or the $import job) from there: a real process with its
own connections, killed by a real SIGKILL, without the second or two of interpreter start-up that
made most of each run. A clean run is then mostly the import itself, so the kill moments, drawn
uniformly over the wall time of a clean run as before, land in the import's work.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from carnet.app import build_services
from carnet.fhir.store_scan import iter_current, raw_bodies
from tests.conftest import CORPUS, make_settings
from tests.support.forkserver import ForkedChild, ForkServer

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
    started = time.monotonic()
    process = _start(forks, env, *args)
    assert process.wait(timeout=600) == 0, _log_tail(env)
    return time.monotonic() - started


def _run_and_kill(
    forks: ForkServer, env: dict[str, str], args: tuple[str, ...], after: float
) -> bool:
    """Start an import and SIGKILL it ``after`` seconds later; False if it had already ended."""
    process = _start(forks, env, *args)
    try:
        process.wait(timeout=after)
    except subprocess.TimeoutExpired:
        # -9 unless the import ended in the instant between the timeout and the kill
        if process.kill() == -signal.SIGKILL:
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
    services = build_services(make_settings(data_dir, database_url))
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


def _database(backend: str, request: pytest.FixtureRequest, name: str) -> str:
    if backend == "sqlite":
        return ""
    return str(request.getfixturevalue("postgres").create_database(name))


def test_import_killed_at_any_point_then_rerun_equals_clean_run(
    backend: str,
    forks: ForkServer,
    import_folder: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    clean_dir = tmp_path / "clean"
    clean_env = _env(clean_dir, _database(backend, request, f"crash_clean_{seed}"))
    run_length = _run_to_end(forks, clean_env, *_import_args(import_folder))
    clean = _store_contents(clean_dir, clean_env["CARNET_DATABASE_URL"])
    assert sum(clean[0].values()) >= NDJSON_LINES + BUNDLES * 50

    kills = stores = 0
    while kills < KILLS:
        assert stores < 3 * KILLS, f"too few kills landed before the imports ended (seed {seed})"
        stores += 1
        data_dir = tmp_path / f"killed{stores}"
        env = _env(data_dir, _database(backend, request, f"crash_{seed}_{stores}"))
        moments = [round(rng.uniform(0, run_length), 2) for _ in range(KILLS_PER_STORE)]
        args = _import_args(import_folder)
        kills += sum(_run_and_kill(forks, env, args, moment) for moment in moments)
        _run_to_end(forks, env, *_import_args(import_folder))
        digests, versions = _store_contents(data_dir, env["CARNET_DATABASE_URL"])
        assert versions == clean[1], f"kills at {moments} s (seed {seed}): versions differ"
        extra, missing = digests - clean[0], clean[0] - digests
        assert not extra and not missing, (
            f"kills at {moments} s (seed {seed}): {sum(extra.values())} resources more and "
            f"{sum(missing.values())} fewer than a clean run"
        )
        _run_to_end(forks, env, *CARNET, "audit", "verify")


JOB = ("tests.support.import_job",)  # python -m tests.support.import_job
JOB_KILLS = 5


def _job_store(
    backend: str, request: pytest.FixtureRequest, folder: Path, data_dir: Path, name: str
) -> dict[str, str]:
    """A fresh store whose import directory holds the files to import."""
    (data_dir / "imports").mkdir(parents=True)
    for path in folder.iterdir():
        (data_dir / "imports" / path.name).write_bytes(path.read_bytes())
    return _env(data_dir, _database(backend, request, name))


def test_import_job_killed_at_any_point_then_resumed_equals_clean_run(
    backend: str,
    forks: ForkServer,
    import_folder: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The same for a $import job: its process killed, the status poll of a new one resumes it."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    clean_env = _job_store(backend, request, import_folder, tmp_path / "clean", f"job_{seed}")
    run_length = _run_to_end(forks, clean_env, *JOB)
    clean = _store_contents(tmp_path / "clean", clean_env["CARNET_DATABASE_URL"])

    env = _job_store(backend, request, import_folder, tmp_path / "killed", f"job_{seed}_k")
    # Each run resumes the job, so a later run has less left to do: moments within the first half
    # of a clean run make at least the first two kills land even when this run is faster than the
    # clean one (a machine whose load dropped), and five of them still reach every phase.
    moments = [round(rng.uniform(0, run_length / 2), 2) for _ in range(JOB_KILLS)]
    kills = sum(_run_and_kill(forks, env, JOB, moment) for moment in moments)
    _run_to_end(forks, env, *JOB)
    digests, versions = _store_contents(tmp_path / "killed", env["CARNET_DATABASE_URL"])
    assert kills >= 2, f"kills at {moments} s (seed {seed}): the job ended before most"
    assert versions == clean[1], f"kills at {moments} s (seed {seed}): versions differ"
    assert digests == clean[0], f"kills at {moments} s (seed {seed}): contents differ"
    _run_to_end(forks, env, *CARNET, "audit", "verify")
