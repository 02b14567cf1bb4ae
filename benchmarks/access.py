"""What the policy decision point costs: the same FHIR requests as an operator (system scopes, no
filter) and as professionals whose access the PDP computes (care relationships, masks, blocks).

Prints p50/p95 per query and caller and the ratio to the operator's figure in the same run.

    .venv/bin/python benchmarks/access.py --patients 2000 --per-patient 10
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carnet.app import Services, build_services, create_app  # noqa: E402
from carnet.authn.tokens import issue_access_token  # noqa: E402
from carnet.caller import (  # noqa: E402
    Kind,
    Principal,
    RequestContext,
)
from carnet.db.instants import stamp  # noqa: E402
from carnet.db.maintenance import analyze  # noqa: E402
from carnet.fhir.transactions import run_transaction  # noqa: E402
from carnet.policy.enforce import note_care  # noqa: E402
from carnet.policy.models import access_visibility  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()
"""The benchmark acts as the CLI does: the local operator, by name."""

CODES = ["8302-2", "29463-7", "8867-4", "8480-6", "8462-4"]
GP = Principal(Kind.PROFESSIONAL, "pro-gp", rpps="10000000011", profession="physician")
NURSE = Principal(Kind.PROFESSIONAL, "pro-nurse", rpps="10000000029", profession="nurse")
OPERATOR = Principal(Kind.OPERATOR, "operator:bench", scopes=frozenset({"system/*.*"}))


def load(services: Services, patients: int, per_patient: int) -> list[tuple[str, list[str]]]:
    """Patients with Observations; every patient cared for by the GP (a large practice), the
    nurse caring for each one; one Observation in ten masked."""
    out: list[tuple[str, list[str]]] = []
    rng = random.Random(3)
    for n in range(patients):
        entries = [
            {
                "fullUrl": "urn:uuid:p",
                "resource": {"resourceType": "Patient", "birthDate": "1970-01-01"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ]
        for k in range(per_patient):
            entries.append(
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": CODES[k % 5]}]},
                        "subject": {"reference": "urn:uuid:p"},
                        "effectiveDateTime": f"2025-{1 + k % 12:02d}-{1 + n % 28:02d}",
                        "valueQuantity": {"value": rng.randint(40, 120), "unit": "kg"},
                    },
                    "request": {"method": "POST", "url": "Observation"},
                }
            )
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        reply = run_transaction(services.fhir, bundle, "", ctx=AS_LOCAL_OPERATOR)
        ids = [e["response"]["location"].split("/")[1] for e in reply["entry"]]
        out.append((ids[0], ids[1:]))
    with services.engine.begin() as conn:
        for pid, obs in out:
            note_care(conn, pid, GP.rpps or "", "declared")
            note_care(conn, pid, NURSE.rpps or "", "declared")
            conn.execute(
                access_visibility.insert().values(
                    res_type="Observation",
                    res_id=obs[0],
                    flag="MASQUE_PS",
                    patient_id=pid,
                    created_at=stamp(),
                )
            )
    return out


def timed(client: TestClient, headers: dict[str, str], path: str, params: dict[str, str]) -> float:
    start = time.perf_counter()
    r = client.get(path, params=params, headers=headers)
    elapsed = (time.perf_counter() - start) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{path} answered {r.status_code}")
    return elapsed


def run(args: argparse.Namespace, data_dir: Path) -> None:
    """Load the population into a store in ``data_dir`` and time each query per caller."""
    settings = Settings.from_env({}, data_dir=str(data_dir))
    services = build_services(settings)
    try:
        started = time.perf_counter()
        population = load(services, args.patients, args.per_patient)
        analyze(services.engine)
        loaded = time.perf_counter() - started
        signer = services.crypto.token_signer()
        headers = {
            name: {
                "Authorization": f"Bearer {issue_access_token(signer, settings, p, minutes=600)[0]}"
            }
            for name, p in (("operator", OPERATOR), ("gp", GP), ("nurse", NURSE))
        }
        rng = random.Random(7)
        picks = [rng.choice(population) for _ in range(args.runs)]
        queries = {
            "read Observation": lambda p: (f"/fhir/Observation/{p[1][1]}", {}),
            "patient's Observations by code": lambda p: (
                "/fhir/Observation",
                {"patient": p[0], "code": CODES[1]},
            ),
            "last 5 results (_sort)": lambda p: (
                "/fhir/Observation",
                {"patient": p[0], "_sort": "-date", "_count": "5"},
            ),
            "$everything": lambda p: (f"/fhir/Patient/{p[0]}/$everything", {}),
        }
        print(
            f"{args.patients} patients, {args.patients * (args.per_patient + 1)} resources "
            f"(loaded in {loaded:.0f} s), {args.runs} runs per cell, SQLite"
        )
        print(f"{'query':<34}{'caller':<10}{'p50 ms':>9}{'p95 ms':>9}{'p95 / operator':>16}")
        with TestClient(create_app(settings, services), base_url="http://127.0.0.1") as client:
            for label, make in queries.items():
                base_p95 = None
                for caller in ("operator", "gp", "nurse"):
                    times = [timed(client, headers[caller], *make(p)) for p in picks]
                    times.sort()
                    p50 = statistics.median(times)
                    p95 = times[int(len(times) * 0.95) - 1]
                    base_p95 = base_p95 or p95
                    print(f"{label:<34}{caller:<10}{p50:>9.2f}{p95:>9.2f}{p95 / base_p95:>16.2f}")
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--per-patient", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    # The store goes with its folder, however the run ends (2,000 patients leave ~100 MB).
    with tempfile.TemporaryDirectory(prefix="carnet-access-bench-") as folder:
        run(args, Path(folder))
    print("reproduce: .venv/bin/python benchmarks/access.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
