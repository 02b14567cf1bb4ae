"""kill -9, twenty times (issue 16, "Load and faults"): of the server during writes, and of
`carnet import`, each followed by a restart or a resumed run.

What it covers:

- **the server** (uvicorn serving ``create_app``) is SIGKILLed at a random moment while clients
  post transactions (a Patient and two Observations in one Bundle) and deposits (a
  DocumentReference with a PDF, whose bytes go to the blob store), then restarted on the same
  store. In the end: every write the server acknowledged is there, no transaction is partly
  stored (all three of its resources or none), every stored deposit reads back byte for byte,
  and the audit log verifies;
- **`carnet import`** (the CLI command, transaction Bundles and an NDJSON file) is SIGKILLed at
  random moments, then run again until it ends: the store holds exactly the resources of a
  clean run (the same identifiers, each once) and the audit log verifies.

Cheap by design: the children are forked from this process, which has already imported Carnet,
uvicorn and the CLI (a fresh interpreter costs seconds), and the data are small. Kill moments come
from a seeded generator; the seed is in every failure message (CARNET_TEST_KILL_SEED replays it).
SQLite only: the existing crash-safety test (tests/functional/test_import_crash_safety.py) runs
imports on PostgreSQL too.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest
import uvicorn
from fastapi.testclient import TestClient

import carnet.cli.main
from carnet.app import Services, build_services, create_app
from carnet.audit.verify import verify
from carnet.demo.pdf import make_pdf
from tests.conftest import make_settings
from tests.support.auth import bearer
from tests.support.forked import exit_code, fork_child, kill
from tests.support.migrated_store import SqliteTemplate
from tests.support.serve import HOST, SHARED_TLS, free_port, wait_until_listening

# Slow: twenty processes killed, with their restarts (about 30 s on an idle 2-core machine).
pytestmark = pytest.mark.slow

MARK = "urn:carnet:test:kill"
SERVER_KILLS = 10
IMPORT_KILLS = 10
WRITERS = 3  # client threads posting meanwhile
SEED = int(os.environ.get("CARNET_TEST_KILL_SEED", random.randrange(2**32)))


@contextmanager
def _opened(data_dir: Path) -> Iterator[tuple[Services, TestClient]]:
    settings = make_settings(data_dir)
    services = build_services(settings, migrate=False)
    try:
        app = create_app(settings, services)
        with TestClient(app, base_url="http://127.0.0.1", headers=bearer(services)) as client:
            yield services, client
    finally:
        services.close()


def _marks(client: TestClient, res_type: str) -> list[str]:
    """The marks of every current resource of ``res_type`` (a list: a duplicate shows twice)."""
    found: list[str] = []
    url: str | None = f"/fhir/{res_type}?identifier={MARK}|&_count=500"
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.text
        bundle = page.json()
        for entry in bundle.get("entry", []):
            found += [
                i["value"] for i in entry["resource"].get("identifier", []) if i["system"] == MARK
            ]
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
    return found


# --- the server, killed during writes ------------------------------------------------------


def _serve(data_dir: Path, port: int, token_file: Path) -> Callable[[], int]:
    """The server's child. It hands the test a bearer token in ``token_file``: the test process
    must not open the store itself while children write to it (an SQLite connection, and the
    WAL checkpointer's, must never be shared across a fork)."""

    def child() -> int:
        settings = make_settings(data_dir)
        services = build_services(settings, migrate=False)
        token_file.write_bytes(orjson.dumps(bearer(services)))
        app = create_app(settings, services)
        config = uvicorn.Config(app, host=HOST, port=port, log_level="error", lifespan="on")
        uvicorn.Server(config).run()
        return 0

    return child


def _identified(mark: str) -> list[dict[str, str]]:
    return [{"system": MARK, "value": mark}]


def _transaction(mark: str) -> dict[str, Any]:
    patient = f"urn:uuid:{mark}-p"

    def observation(suffix: str) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "Observation",
                "identifier": _identified(f"{mark}-{suffix}"),
                "status": "final",
                "code": {"text": "poids"},
                "subject": {"reference": patient},
                "valueQuantity": {"value": 60, "unit": "kg"},
            },
            "request": {"method": "POST", "url": "Observation"},
        }

    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient,
                "resource": {"resourceType": "Patient", "identifier": _identified(mark)},
                "request": {"method": "POST", "url": "Patient"},
            },
            observation("a"),
            observation("b"),
        ],
    }


def _pdf(mark: str) -> bytes:
    return make_pdf("Compte rendu", [f"Document {mark}."])


def _deposit(mark: str) -> dict[str, Any]:
    data = base64.b64encode(_pdf(mark)).decode()
    return {
        "resourceType": "DocumentReference",
        "identifier": _identified(mark),
        "status": "current",
        "content": [{"attachment": {"contentType": "application/pdf", "data": data}}],
    }


class Writers:
    """Client threads posting transactions and deposits until the server goes away; what the
    server acknowledged (2xx) and what was attempted, by mark."""

    def __init__(self, base: str, headers: dict[str, str], round_: int) -> None:
        self.base, self.headers, self.round = base, headers, round_
        self.attempted: set[str] = set()
        self.acknowledged: set[str] = set()
        self.refused: list[str] = []  # answers other than a success: none expected
        self.cut: list[str] = []  # the errors that ended each writer (the kill)
        self.first_acknowledged = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(WRITERS)]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, writer: int) -> None:
        with httpx.Client(
            base_url=self.base, headers=self.headers, timeout=30, verify=SHARED_TLS
        ) as http:
            for n in range(10_000):
                mark = f"r{self.round}w{writer}n{n}"
                deposit = n % 3 == 2
                with self._lock:
                    self.attempted.add(mark)
                try:
                    if deposit:
                        answer = http.post("/fhir/DocumentReference", json=_deposit(mark))
                    else:
                        answer = http.post("/fhir", json=_transaction(mark))
                except httpx.TransportError as exc:
                    self.cut.append(type(exc).__name__)
                    return  # killed: this write's outcome is unknown
                with self._lock:
                    if answer.status_code in (200, 201):
                        self.acknowledged.add(mark)
                        self.first_acknowledged.set()
                    else:
                        self.refused.append(f"{mark}: {answer.status_code} {answer.text[:200]}")


def _wait_until_served(port: int, pid: int, log: Path) -> None:
    ended: list[int | None] = []

    def has_ended() -> bool:
        ended.append(exit_code(pid, 0))
        return ended[-1] is not None

    def fail() -> None:
        code = ended[-1] if ended else None
        assert code is None, (
            f"the server ended ({code}) before it served: {log.read_text()[-2000:]}"
        )
        raise AssertionError("the server did not answer within a minute")

    wait_until_listening(port, ended=has_ended, fail=fail)
    metadata = httpx.get(f"http://{HOST}:{port}/fhir/metadata", timeout=30, verify=SHARED_TLS)
    assert metadata.status_code == 200, metadata.text[:200]


@pytest.fixture(scope="module")
def warm_parent(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: SqliteTemplate) -> None:
    """One transaction and one deposit in this process, on a store of its own, before any fork:
    what a process loads on its first writes (schemas, the PDF parser, query plans) is then
    inherited by every child instead of being loaded by each."""
    scratch = tmp_path_factory.mktemp("warm") / "data"
    migrated_sqlite.copy_into(scratch)
    with _opened(scratch) as (_services, client):
        assert client.post("/fhir", json=_transaction("warm")).status_code == 200
        assert client.post("/fhir/DocumentReference", json=_deposit("warm")).status_code == 201


def test_server_killed_during_writes_keeps_every_acknowledged_write_and_no_partial_one(
    tmp_path: Path, migrated_sqlite: SqliteTemplate, warm_parent: None
) -> None:
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    migrated_sqlite.copy_into(data_dir)
    attempted: set[str] = set()
    acknowledged: set[str] = set()
    for round_ in range(SERVER_KILLS):
        port = free_port()
        base = f"http://{HOST}:{port}"
        token_file = tmp_path / "bearer.json"
        pid = fork_child(_serve(data_dir, port, token_file), tmp_path / "server.log")
        _wait_until_served(port, pid, tmp_path / "server.log")
        with Writers(base, orjson.loads(token_file.read_bytes()), round_) as writers:
            # Writes under way (a fresh process's first ones are slow: schemas, plans), then
            # a moment that falls anywhere in the next ones.
            writers.first_acknowledged.wait(timeout=60)
            time.sleep(rng.uniform(0, 1.0))
            kill(pid)
        assert not writers.refused, f"seed {SEED}: {writers.refused[:3]}"
        attempted |= writers.attempted
        acknowledged |= writers.acknowledged
    where = f"seed {SEED}; {len(acknowledged)} of {len(attempted)} writes acknowledged"
    assert len(acknowledged) >= SERVER_KILLS, f"too few writes landed ({where}; {writers.cut})"

    with _opened(data_dir) as (services, client):
        patients = _marks(client, "Patient")
        observations = _marks(client, "Observation")
        documents = _marks(client, "DocumentReference")
        stored = set(patients) | set(documents)
        assert len(patients) + len(documents) == len(stored), f"a write stored twice ({where})"
        assert acknowledged <= stored, (
            f"acknowledged writes lost: {acknowledged - stored} ({where})"
        )
        assert stored <= attempted
        whole = {f"{p}-{suffix}" for p in patients for suffix in "ab"}
        assert sorted(observations) == sorted(whole), f"a transaction partly stored ({where})"
        for mark in documents:
            (entry,) = client.get(
                "/fhir/DocumentReference", params={"identifier": f"{MARK}|{mark}"}
            ).json()["entry"]
            data = entry["resource"]["content"][0]["attachment"]["data"]
            assert base64.b64decode(data) == _pdf(mark), f"deposit {mark} unreadable ({where})"
        report = verify(services.audit)
        assert report.ok, f"{report.problem} ({where})"


# --- `carnet import`, killed and run again ------------------------------------------------

BUNDLES = 12
OBSERVATIONS_PER_BUNDLE = 8
NDJSON_LINES = 300


def _import_folder(folder: Path) -> Path:
    folder.mkdir()
    for b in range(BUNDLES):
        bundle = _transaction(f"b{b}")
        template = bundle["entry"][1]
        bundle["entry"][1:] = [
            {
                **template,
                "resource": {**template["resource"], "identifier": _identified(f"b{b}-o{o}")},
            }
            for o in range(OBSERVATIONS_PER_BUNDLE)
        ]
        (folder / f"bundle{b:02d}.json").write_bytes(orjson.dumps(bundle))
    lines = (
        orjson.dumps(
            {
                "resourceType": "Observation",
                "identifier": _identified(f"n{i}"),
                "status": "final",
                "code": {"text": "taille"},
                "valueQuantity": {"value": i, "unit": "cm"},
            }
        )
        for i in range(NDJSON_LINES)
    )
    (folder / "Observation.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def _import(data_dir: Path, folder: Path) -> Callable[[], int]:
    def child() -> int:
        os.environ["CARNET_DATA_DIR"] = str(data_dir)
        os.environ["CARNET_PUBLIC_BASE_URL"] = "http://127.0.0.1"
        args = ["import", str(folder), "--batch-size", "25"]
        try:
            carnet.cli.main.app(args, standalone_mode=False)
        except SystemExit as exit_:
            return int(exit_.code or 0)
        return 0

    return child


def _imported(data_dir: Path) -> dict[str, list[str]]:
    with _opened(data_dir) as (services, client):
        report = verify(services.audit)
        assert report.ok, f"{report.problem} (seed {SEED})"
        return {t: sorted(_marks(client, t)) for t in ("Patient", "Observation")}


def test_import_killed_at_random_moments_then_resumed_stores_what_a_clean_run_does(
    tmp_path: Path, migrated_sqlite: SqliteTemplate, warm_parent: None
) -> None:
    rng = random.Random(SEED + 1)
    folder = _import_folder(tmp_path / "in")
    log = tmp_path / "import.log"
    clean_dir = tmp_path / "clean"
    migrated_sqlite.copy_into(clean_dir)
    started = time.monotonic()
    assert exit_code(fork_child(_import(clean_dir, folder), log), 300) == 0, log.read_text()[-2000:]
    run_length = time.monotonic() - started
    clean = _imported(clean_dir)
    expected_patients = [f"b{b}" for b in range(BUNDLES)]
    assert clean["Patient"] == sorted(expected_patients)
    assert len(clean["Observation"]) == BUNDLES * OBSERVATIONS_PER_BUNDLE + NDJSON_LINES

    # Kills on one store until a run ends by itself (each run resumes, so later ones have less
    # to do and outrun their kill): that store must equal the clean one; then a fresh store.
    landed = stores = 0
    while landed < IMPORT_KILLS:
        assert stores < IMPORT_KILLS, f"too few kills landed before the imports ended (seed {SEED})"
        stores += 1
        data_dir = tmp_path / f"killed{stores}"
        migrated_sqlite.copy_into(data_dir)
        moments: list[float] = []
        while landed < IMPORT_KILLS:
            moments.append(round(rng.uniform(0.05, 0.6) * run_length, 2))
            pid = fork_child(_import(data_dir, folder), log)
            code = exit_code(pid, moments[-1])
            if code is not None:
                assert code == 0, log.read_text()[-2000:]
                break
            kill(pid)
            landed += 1
        else:
            finished = exit_code(fork_child(_import(data_dir, folder), log), 300)
            assert finished == 0, log.read_text()[-2000:]
        where = f"kills at {moments} s of a {run_length:.1f} s clean run (seed {SEED})"
        assert _imported(data_dir) == clean, f"the store differs from a clean run: {where}"
