"""Load the synthetic population through the FHIR service, resumably.

Each patient is one transaction Bundle of PUTs with deterministic ids, so a load interrupted at
any point leaves whole patients only, and a re-run skips the patients already stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from carnet.caller import RequestContext
from carnet.demo.population import DEFAULT_SEED, generate_population, generate_shared_resources
from carnet.fhir.errors import FhirError
from carnet.fhir.service import FhirService
from carnet.fhir.transactions import run_transaction

BASE = "urn:carnet:demo"


@dataclass
class DemoReport:
    patients_loaded: int = 0
    patients_skipped: int = 0
    resources: int = 0


def _patient_id(bundle: dict[str, object]) -> str:
    entries = bundle["entry"]
    assert isinstance(entries, list)
    for entry in entries:
        if entry["resource"]["resourceType"] == "Patient":
            return str(entry["resource"]["id"])
    raise ValueError("bundle without a Patient")


def load_demo(
    service: FhirService,
    count: int,
    seed: int = DEFAULT_SEED,
    *,
    ctx: RequestContext,
    progress: Callable[[], None] | None = None,
) -> DemoReport:
    """Load ``count`` synthetic patients (and the shared organisations and practitioners)."""
    report = DemoReport()
    shared = generate_shared_resources(seed)
    run_transaction(service, shared, BASE, ctx)
    for bundle in generate_population(count, seed):
        patient_id = _patient_id(bundle)
        try:
            service.read("Patient", patient_id, ctx=ctx)
            report.patients_skipped += 1
        except FhirError:
            response = run_transaction(service, bundle, BASE, ctx)
            report.patients_loaded += 1
            report.resources += len(response["entry"])
        if progress:
            progress()
    return report
