"""A bounded load test on loopback: a real `carnet serve` (one process, the embedded SQLite by
default) under client threads mixing the day's traffic, for a fixed time.

- patient read: a person reads their own lab results (a search in their compartment, as the
  patient, with their bearer token);
- professional search: a physician with a care relationship searches a patient's results by
  code;
- deposit: the physician deposits a DocumentReference with a PDF (screened, blob written);
- import: professional software posts a transaction Bundle of ten Observations (as a backend
  with system scopes);
- metadata: GET /fhir/metadata, the baseline of the same run (no data, no database).

Prints, per kind: requests, errors, p50/p95/p99 in ms and the p95's ratio to the baseline's; the
server's resident memory (RSS) at start, after the warm-up and at the end, with the growth from
warm-up to end. Exits 1 on any error (a non-2xx answer or a failed connection).

    .venv/bin/python benchmarks/load.py --seconds 120 --warmup 30 --clients 4 --patients 50
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carnet.app import build_services  # noqa: E402
from carnet.authn.tokens import issue_access_token  # noqa: E402
from carnet.caller import Kind, Principal, RequestContext  # noqa: E402
from carnet.db.engine import writing  # noqa: E402
from carnet.demo.pdf import make_pdf  # noqa: E402
from carnet.policy.enforce import note_care  # noqa: E402
from carnet.settings import Settings  # noqa: E402

HOST = "127.0.0.1"
AS_LOCAL_OPERATOR = RequestContext.local_operator()
GP_RPPS = "10000000077"
LOINC = "http://loinc.org"
CODES = ("2345-7", "4548-4", "2823-3", "718-7")
# Shares of each kind in the traffic (patients read most; imports are few but large).
MIX = {"patient read": 45, "professional search": 25, "deposit": 10, "import": 10, "metadata": 10}


def _observation(patient_id: str, i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": CODES[i % len(CODES)]}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": f"{2020 + i % 5}-{1 + i % 12:02d}-{1 + i % 28:02d}T08:00:00Z",
        "valueQuantity": {"value": 1 + (i % 17) / 10, "unit": "mmol/L"},
    }


@dataclass
class World:
    patients: list[str]
    tokens: dict[str, str]  # "gp", "backend", and each patient id


def populate(settings: Settings, patients: int, results: int, minutes: float) -> World:
    """Patients with lab results, all under one physician's care; a token for each caller."""
    services = build_services(settings)
    try:
        ids = []
        for n in range(patients):
            body = {"resourceType": "Patient", "gender": "female", "birthDate": "1970-01-01"}
            pid = services.fhir.create("Patient", body, ctx=AS_LOCAL_OPERATOR).stored.res_id
            for i in range(results):
                services.fhir.create("Observation", _observation(pid, n + i), ctx=AS_LOCAL_OPERATOR)
            with writing(services.engine) as conn:
                note_care(conn, pid, GP_RPPS, "declared")
            ids.append(pid)
        signer = services.crypto.token_signer()
        principals = {
            "gp": Principal(Kind.PROFESSIONAL, "pro-load-gp", rpps=GP_RPPS, profession="physician"),
            "backend": Principal(
                Kind.BACKEND, "backend-load", client_id="load", scopes=frozenset({"system/*.*"})
            ),
        }
        principals |= {pid: Principal(Kind.PERSON, f"acct-{pid}", patient_id=pid) for pid in ids}
        tokens = {
            name: issue_access_token(signer, settings, p, minutes=minutes)[0]
            for name, p in principals.items()
        }
        return World(ids, tokens)
    finally:
        services.close()


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Tally:
    """Latencies (ms) and errors per kind, from every client thread."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, ms: float, error: str | None) -> None:
        with self.lock:
            self.latencies[kind].append(ms)
            if error:
                self.errors[kind].append(error)


class Client(threading.Thread):
    """One client: requests of every kind, drawn by MIX, until ``stop``; counted only after
    ``counting`` is set (the warm-up is not measured)."""

    def __init__(self, n: int, base: str, world: World, tally: Tally, seed: int) -> None:
        super().__init__(name=f"load-client-{n}", daemon=True)
        self.n, self.base, self.world, self.tally = n, base, world, tally
        self.rng = random.Random(seed + n)
        self.stop = threading.Event()
        self.counting = threading.Event()
        self.sequence = 0

    def _auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.tokens[who]}"}

    def _request(self, http: httpx.Client, kind: str) -> httpx.Response:
        patient = self.rng.choice(self.world.patients)
        self.sequence += 1
        if kind == "patient read":
            params = {"subject": f"Patient/{patient}", "category": "laboratory", "_count": "20"}
            return http.get("/fhir/Observation", params=params, headers=self._auth(patient))
        if kind == "professional search":
            code = self.rng.choice(CODES)
            params = {"subject": f"Patient/{patient}", "code": f"{LOINC}|{code}"}
            return http.get("/fhir/Observation", params=params, headers=self._auth("gp"))
        if kind == "deposit":
            # A distinct document each time: a new blob, as in real deposits.
            pdf = make_pdf("Compte rendu", [f"Consultation {self.n}-{self.sequence}."])
            body = {
                "resourceType": "DocumentReference",
                "status": "current",
                "type": {"coding": [{"system": LOINC, "code": "11488-4"}]},
                "subject": {"reference": f"Patient/{patient}"},
                "content": [
                    {
                        "attachment": {
                            "contentType": "application/pdf",
                            "data": base64.b64encode(pdf).decode(),
                        }
                    }
                ],
            }
            return http.post("/fhir/DocumentReference", json=body, headers=self._auth("gp"))
        if kind == "import":
            entries = [
                {
                    "resource": _observation(patient, self.sequence + i),
                    "request": {"method": "POST", "url": "Observation"},
                }
                for i in range(10)
            ]
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            return http.post("/fhir", json=bundle, headers=self._auth("backend"))
        return http.get("/fhir/metadata")

    def run(self) -> None:
        kinds, weights = list(MIX), list(MIX.values())
        with httpx.Client(base_url=self.base, timeout=60) as http:
            while not self.stop.is_set():
                kind = self.rng.choices(kinds, weights)[0]
                started = time.perf_counter()
                error = None
                try:
                    answer = self._request(http, kind)
                    if answer.status_code >= 300:
                        error = f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                ms = (time.perf_counter() - started) * 1000
                if self.counting.is_set():
                    self.tally.add(kind, ms, error)


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def serve(data_dir: Path, port: int, database_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env |= {
        "CARNET_DATA_DIR": str(data_dir),
        "CARNET_PORT": str(port),
        "CARNET_PUBLIC_BASE_URL": f"http://{HOST}:{port}",
        "PYTHONPATH": str(ROOT),
    }
    if database_url:
        env["CARNET_DATABASE_URL"] = database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "carnet", "serve", "--host", HOST, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir.parent / "server.log").open("ab"),
    )
    deadline = time.monotonic() + 120
    # One client for every poll: each new one builds a TLS context (~25 ms of CPU), every 0.1 s.
    with httpx.Client(timeout=2) as http:
        while True:
            try:
                http.get(f"http://{HOST}:{port}/fhir/metadata")
                return process
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("carnet serve did not start (see server.log)") from None
                time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="measured time")
    parser.add_argument("--warmup", type=float, default=30, help="unmeasured time before it")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--results", type=int, default=20, help="lab results per patient")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        settings = Settings.from_env(
            {},
            data_dir=str(data_dir),
            database_url=args.database_url,
            public_base_url=f"http://{HOST}:{port}",
        )
        # The tokens outlive the server's start-up (up to its 2-minute deadline on a loaded
        # machine: an 8-second token expired before the first request) and twice the run.
        minutes = 2 + (args.seconds + args.warmup) / 30
        world = populate(settings, args.patients, args.results, minutes)
        server = serve(data_dir, port, args.database_url)
        try:
            rss_start = rss_mib(server.pid)
            tally = Tally()
            base = f"http://{HOST}:{port}"
            clients = [Client(n, base, world, tally, args.seed) for n in range(args.clients)]
            for client in clients:
                client.start()
            time.sleep(args.warmup)
            rss_warm = rss_mib(server.pid)
            rss_peak = rss_warm
            for client in clients:
                client.counting.set()
            ends = time.monotonic() + args.seconds
            while time.monotonic() < ends:
                time.sleep(min(1.0, max(0.0, ends - time.monotonic())))
                rss_peak = max(rss_peak, rss_mib(server.pid))
            for client in clients:
                client.stop.set()
            for client in clients:
                client.join(timeout=120)
            rss_end = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(args, tally, (rss_start, rss_warm, rss_peak, rss_end))
    return 1 if any(tally.errors.values()) else 0


def report(args: argparse.Namespace, tally: Tally, rss: tuple[float, float, float, float]) -> None:
    backend = "postgresql" if args.database_url else "sqlite"
    print(
        f"load on {backend}: {args.clients} clients, {args.seconds:.0f} s measured after "
        f"{args.warmup:.0f} s of warm-up, {args.patients} patients x {args.results} results"
    )
    base_p95 = percentile(sorted(tally.latencies.get("metadata", [])), 0.95)
    print(
        f"{'kind':<20} {'requests':>8} {'errors':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'p95/base':>8}"
    )
    for kind in MIX:
        ms = sorted(tally.latencies.get(kind, []))
        p50, p95, p99 = (percentile(ms, q) for q in (0.5, 0.95, 0.99))
        print(
            f"{kind:<20} {len(ms):>8} {len(tally.errors.get(kind, [])):>6} "
            f"{p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {p95 / base_p95:>8.1f}"
        )
    total = sum(len(v) for v in tally.latencies.values())
    print(f"throughput {total / args.seconds:.1f} requests/s (latencies in ms)")
    start, warm, peak, end = rss
    growth = 100 * (end - warm) / warm
    print(
        f"server RSS MiB: start {start:.1f}, after warm-up {warm:.1f}, peak {peak:.1f}, "
        f"end {end:.1f} (growth after warm-up {growth:+.1f} %)"
    )
    for kind, errors in tally.errors.items():
        for error in errors[:3]:
            print(f"error {kind}: {error}")
    command = (
        f".venv/bin/python benchmarks/load.py --seconds {args.seconds:g} --warmup {args.warmup:g} "
        f"--clients {args.clients} --patients {args.patients} --results {args.results}"
    )
    if args.database_url:
        command += " --database-url URL"
    print(f"reproduce: {command}")


if __name__ == "__main__":
    sys.exit(main())
