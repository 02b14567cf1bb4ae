"""What the first requests on a new app cost, in CPU, in a process that makes several apps.

The test suite builds some 1,500 apps (``create_app`` over a copy of a migrated store, then a
``TestClient``), one per test, in the two processes of its workers. This script does the same, a
warm-up app first, then ``--apps`` more, and times ``process_time()`` of the first and second GET
of a few paths on each: a FHIR search, a portal page, the FHIR metadata. Prints the median and
the maximum per path, in CPU milliseconds (the machine is shared: CPU, not wall).

    .venv/bin/python benchmarks/first_request.py --apps 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carnet.app import build_services, create_app  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.support.auth import bearer  # noqa: E402
from tests.support.migrated_store import SqliteTemplate  # noqa: E402

# In this order: the metadata's CapabilityStatement reads the app's OpenAPI document, whose first
# build walks every route (and so builds every route's state when that is per app).
PATHS = ("/fhir/Patient?family=Martin", "/", "/fhir/metadata")


def one_app(root: Path, template: SqliteTemplate, name: str) -> dict[str, tuple[float, float]]:
    """CPU ms of the first and second GET of each path on a new app over a new store."""
    data_dir = root / name
    template.copy_into(data_dir)
    settings = make_settings(data_dir)
    services = build_services(settings, migrate=False)
    costs: dict[str, tuple[float, float]] = {}
    try:
        app = create_app(settings, services)
        with TestClient(app, base_url="http://127.0.0.1", headers=bearer(services)) as client:
            for path in PATHS:
                spent = []
                for _ in range(2):
                    start = time.process_time()
                    response = client.get(path, follow_redirects=False)
                    spent.append((time.process_time() - start) * 1000)
                    assert response.status_code < 500, (path, response.status_code)
                costs[path] = (spent[0], spent[1])
    finally:
        services.close()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        template = SqliteTemplate(root / "template")
        one_app(root, template, "warm-up")
        runs = [one_app(root, template, f"app-{i}") for i in range(args.apps)]
    print(f"CPU ms per GET on a new app ({args.apps} apps after a warm-up one)")
    print(f"{'path':32} {'1st median':>10} {'1st max':>8} {'2nd median':>10}")
    for path in PATHS:
        first = [run[path][0] for run in runs]
        second = [run[path][1] for run in runs]
        print(
            f"{path:32} {statistics.median(first):10.1f} {max(first):8.1f}"
            f" {statistics.median(second):10.1f}"
        )
    total = [sum(run[path][0] for path in PATHS) for run in runs]
    print(f"{'first GETs together':32} {statistics.median(total):10.1f} {max(total):8.1f}")
    print("reproduce: .venv/bin/python benchmarks/first_request.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
