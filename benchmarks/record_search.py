"""In-record search benchmark: p50/p95 of ``RecordSearch.search`` over one patient's record of N
resources and D PDF documents, as a professional with a care relationship (the policy applies),
beside two baselines measured in the same run on the same text:

- **decrypt + substring**: the same visible items loaded (decrypted) through the same caller-bound session, then
  a plain scan of their (already extracted, folded) text for the query's words: what any in-memory
  search must at least pay;
- **FTS5 (prebuilt)**: SQLite FTS5 over the same text in a temporary in-memory database, the index
  built beforehand and only the query timed: the speed of a clear-text full-text index, which
  Carnet refuses to keep.

    .venv/bin/python benchmarks/record_search.py [--resources 2000] [--documents 50] [--runs 100]

The first query after start-up is reported apart (``cold``): it extracts every PDF's text once.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carnet.app import Services, build_services  # noqa: E402
from carnet.caller import Kind, Principal, RequestContext  # noqa: E402
from carnet.demo.pdf import make_pdf  # noqa: E402
from carnet.record.search import RecordSearch  # noqa: E402
from carnet.record.search_text import fold  # noqa: E402
from carnet.settings import Settings  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()
"""The loader acts as the CLI does: the local operator, by name."""
RPPS = "10000000011"
AS_DOCTOR = RequestContext(
    Principal(Kind.PROFESSIONAL, "pro-bench", rpps=RPPS, profession="physician"), "pro-bench"
)

WORDS = [
    "fracture",
    "poignet",
    "plâtre",
    "hépatite",
    "sérologie",
    "glycémie",
    "hémoglobine",
    "glyquée",
    "tension",
    "artérielle",
    "insuffisance",
    "rénale",
    "créatinine",
    "asthme",
    "bronchite",
    "allergie",
    "pénicilline",
    "vaccin",
    "grippe",
    "douleur",
    "thoracique",
    "électrocardiogramme",
    "échographie",
    "abdominale",
    "cholestérol",
    "diabète",
    "traitement",
    "suivi",
    "contrôle",
    "consultation",
    "hospitalisation",
    "urgence",
    "radiographie",
    "thorax",
    "toux",
    "fièvre",
    "antibiotique",
]
CODES = [
    ("Glycémie à jeun", "mmol/L"),
    ("Hémoglobine glyquée", "%"),
    ("Créatinine", "µmol/L"),
    ("Cholestérol total", "g/L"),
    ("Pression artérielle systolique", "mm[Hg]"),
    ("Poids", "kg"),
]
QUERIES = [
    "fracture",
    "hepatite",
    "glycémie",
    "insuffisance renale",
    "allergie penicilline",
    "douleur thoracique",
    "créatinine",
    "diabète traitement",
    "échographie abdominale",
    "7,2",
]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def structured(rng: random.Random, patient: str, i: int) -> dict[str, Any]:
    day = f"20{10 + i % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}"
    subject = {"reference": f"Patient/{patient}"}
    if i % 3 == 2:
        return {
            "resourceType": "Condition",
            "subject": subject,
            "code": {"text": sentence(rng, 3)},
            "onsetDateTime": day,
            "note": [{"text": sentence(rng, 12)}],
        }
    display, unit = CODES[i % len(CODES)]
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1-8", "display": display}]},
        "subject": subject,
        "effectiveDateTime": day,
        "valueQuantity": {"value": round(rng.uniform(1, 200), 1), "unit": unit},
        "note": [{"text": sentence(rng, 6)}],
    }


def document(rng: random.Random, patient: str, i: int) -> dict[str, Any]:
    lines = [sentence(rng, 10) for _ in range(40)]
    pdf = make_pdf("Compte rendu de consultation", lines)
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"text": "Compte rendu de consultation"},
        "subject": {"reference": f"Patient/{patient}"},
        "date": f"20{10 + i % 15:02d}-0{1 + i % 9}-1{i % 9}T10:00:00Z",
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "data": base64.b64encode(pdf).decode(),
                }
            }
        ],
    }


def load(services: Services, resources: int, documents: int) -> str:
    rng = random.Random(11)
    fhir = services.fhir
    patient = fhir.create(
        "Patient", {"resourceType": "Patient", "birthDate": "1960-04-02"}, ctx=AS_LOCAL_OPERATOR
    ).stored.res_id
    bodies = [document(rng, patient, i) for i in range(documents)]
    bodies += [structured(rng, patient, i) for i in range(resources - documents)]
    with fhir.session(AS_LOCAL_OPERATOR, "create", None, None) as session:
        for body in bodies:
            session.create(body["resourceType"], body)
    person = RequestContext(Principal(Kind.PERSON, "acct-bench", patient_id=patient), "acct")
    services.controls.declare_care(person, None, RPPS, medecin_traitant=False)
    return patient


def timed(runs: int, call: Callable[[int], Any]) -> tuple[float, float]:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=2000)
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="carnet-record-search-") as tmp:
        settings = Settings.from_env({}, data_dir=tmp)
        services = build_services(settings)
        started = time.perf_counter()
        patient = load(services, args.resources, args.documents)
        print(
            f"loaded {args.resources} resources ({args.documents} PDF documents) for one patient"
            f" in {time.perf_counter() - started:.1f} s"
        )
        search = RecordSearch(services.fhir)
        start = time.perf_counter()
        first = search.search(AS_DOCTOR, patient, QUERIES[0])
        cold = (time.perf_counter() - start) * 1000
        assert first.searched == args.resources, first.searched

        def carnet(i: int) -> Any:
            return search.search(AS_DOCTOR, patient, QUERIES[i % len(QUERIES)])

        # the same text, extracted once, for the baselines
        texts = {
            (i.res_type, i.res_id): fold(" ".join(f.text for f in i.fields))
            for i in (search.cache.get(s) for s in _visible(services, patient))
        }

        def substring(i: int) -> Any:
            words = [fold(w) for w in QUERIES[i % len(QUERIES)].split()]
            loaded = _visible(services, patient)
            return [
                s.res_id
                for s in loaded
                if any(w in texts.get((s.res_type, s.res_id), "") for w in words)
            ]

        fts = sqlite3.connect(":memory:")
        fts.execute("CREATE VIRTUAL TABLE t USING fts5(key, body, tokenize='unicode61')")
        fts.executemany(
            "INSERT INTO t VALUES (?, ?)", [(f"{k[0]}/{k[1]}", v) for k, v in texts.items()]
        )

        def fts5(i: int) -> Any:
            words = " OR ".join(f'"{fold(w)}"' for w in QUERIES[i % len(QUERIES)].split())
            return fts.execute(
                "SELECT key, snippet(t, 1, '[', ']', '…', 12) FROM t WHERE t MATCH ?"
                " ORDER BY bm25(t) LIMIT 20",
                (words,),
            ).fetchall()

        carnet_p50, carnet_p95 = timed(args.runs, carnet)
        sub_p50, sub_p95 = timed(args.runs, substring)
        fts_p50, fts_p95 = timed(args.runs, fts5)
        print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
        print(f"{'method':<34} {'p50 ms':>8} {'p95 ms':>8} {'p95/Carnet':>11}")
        for name, p50, p95 in (
            ("Carnet RecordSearch", carnet_p50, carnet_p95),
            ("baseline: decrypt + substring scan", sub_p50, sub_p95),
            ("baseline: FTS5 prebuilt, query", fts_p50, fts_p95),
        ):
            print(f"{name:<34} {p50:>8.1f} {p95:>8.1f} {p95 / carnet_p95:>11.2f}")
        print(f"Carnet cold first query (extracts every PDF once): {cold:.0f} ms")
        print(f"p95 under 300 ms: {'yes' if carnet_p95 < 300 else 'NO'}")
        services.close()
    print("reproduce: .venv/bin/python benchmarks/record_search.py " + " ".join(sys.argv[1:]))


def _visible(services: Services, patient: str) -> list[Any]:
    with services.fhir.session(AS_DOCTOR, "search", "Patient", patient) as session:
        vis = session.visibility("search")
        keys = [(t, i) for t, i, _ in session.visible_versions(patient, vis) if t != "Patient"]
        return session.load_visible(vis, keys)


if __name__ == "__main__":
    main()
