"""What a portal page costs on the server: each record page of a patient rendered through the app
(session cookie, caller-bound searches, template), against the same data fetched through the FHIR
API by the same person in the same run (the JSON a script or an app would get).

Prints p50/p95 per page and the ratio of the page's p95 to its API baseline's.

    .venv/bin/python benchmarks/portal.py --documents 50 --results 200 --runs 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carnet.app import Services, build_services, create_app  # noqa: E402
from carnet.authn.api import CSRF_COOKIE, SESSION_COOKIE  # noqa: E402
from carnet.caller import RequestContext  # noqa: E402
from carnet.settings import Settings  # noqa: E402
from tests.support.record_pages import PDF, build_record  # noqa: E402

AS_LOCAL_OPERATOR = RequestContext.local_operator()
"""The benchmark loads data as the CLI does: the local operator, by name."""


def grow(services: Services, patient_id: str, documents: int, results: int) -> None:
    """More documents and lab results than the small test record, spread over five years."""
    import base64

    for i in range(documents):
        services.fhir.create(
            "DocumentReference",
            {
                "resourceType": "DocumentReference",
                "status": "current",
                "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "date": f"{2020 + i % 5}-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                "description": f"Compte rendu {i}",
                "content": [
                    {
                        "attachment": {
                            "contentType": "application/pdf",
                            "data": base64.b64encode(PDF).decode(),
                        }
                    }
                ],
            },
            ctx=AS_LOCAL_OPERATOR,
        )
    codes = ["2345-7", "4548-4", "2823-3", "2951-2", "2160-0", "718-7", "777-3", "6690-2"]
    for i in range(results):
        services.fhir.create(
            "Observation",
            {
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
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": codes[i % len(codes)]}],
                    "text": f"Analyse {codes[i % len(codes)]}",
                },
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": f"{2020 + i % 5}-{1 + i % 12:02d}-{1 + i % 28:02d}T08:00:00Z",
                "valueQuantity": {"value": 1 + (i % 17) / 10, "unit": "mmol/L"},
                "referenceRange": [{"low": {"value": 1.2}, "high": {"value": 2.2}}],
            },
            ctx=AS_LOCAL_OPERATOR,
        )


def timed(client: TestClient, paths: list[str], runs: int) -> list[float]:
    """Milliseconds to fetch every path of ``paths`` in turn (one page, or the API calls that
    fetch the same data), sorted."""
    for path in paths:
        client.get(path)  # warm: templates compiled, plans cached
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(
            {}, data_dir=str(Path(tmp) / "data"), public_base_url="http://127.0.0.1"
        )
        services = build_services(settings)
        try:
            world = build_record(services)
            grow(services, world.patient_id, args.documents, args.results)
            account = services.accounts.create_person(
                "bench@example.org", "correct horse battery staple", world.patient_id
            )
            cookie, csrf = services.sessions.open(account, second_factor=True)
            with TestClient(create_app(settings, services), base_url="http://127.0.0.1") as client:
                client.cookies.set(SESSION_COOKIE, cookie)
                client.cookies.set(CSRF_COOKIE, csrf)
                pid = world.patient_id
                lab = f"/fhir/Observation?patient={pid}&category=laboratory&_count=500"
                others = [
                    f"/fhir/{res_type}?patient={pid}&_count=500"
                    for res_type in (
                        "Immunization",
                        "AllergyIntolerance",
                        "MedicationRequest",
                        "Condition",
                    )
                ]
                pressure = "http://loinc.org|85354-9,http://loinc.org|55284-4"
                pages = [  # (name, page, the API calls that fetch the same data)
                    (
                        "documents",
                        "/dossier",
                        [
                            f"/fhir/DocumentReference?patient={pid}&_sort=-date"
                            "&_include=DocumentReference:author&_count=500"
                        ],
                    ),
                    (
                        "document",
                        f"/dossier/documents/{world.consult}",
                        [f"/fhir/DocumentReference/{world.consult}"],
                    ),
                    ("synthesis", "/dossier/synthese", [lab, *others]),
                    (
                        "chart",
                        "/dossier/mesures/tension",
                        [f"/fhir/Observation?patient={pid}&code={pressure}&_sort=date&_count=500"],
                    ),
                ]
                print(
                    f"documents {args.documents + 4}, lab results {args.results + 5}, runs {args.runs}"
                )
                print(
                    f"{'page':<12}{'p50 ms':>9}{'p95 ms':>9}{'API p50':>9}{'API p95':>9}{'p95 / API':>11}"
                )
                for name, page, api in pages:
                    shown = timed(client, [page], args.runs)
                    base = timed(client, api, args.runs)
                    p95, base_p95 = (
                        shown[int(len(shown) * 0.95) - 1],
                        base[int(len(base) * 0.95) - 1],
                    )
                    p50, base_p50 = shown[len(shown) // 2], base[len(base) // 2]
                    print(
                        f"{name:<12}{p50:>9.1f}{p95:>9.1f}{base_p50:>9.1f}{base_p95:>9.1f}{p95 / base_p95:>11.2f}"
                    )
        finally:
            services.close()
    print("reproduce: .venv/bin/python benchmarks/portal.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
