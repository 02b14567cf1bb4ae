"""Writers and locks: a write that cannot get the database lock in time answers 503 with
Retry-After (not a 500), and a huge indexed string no longer holds the lock long enough to make
concurrent requests fail."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from carnet.app import Services
from carnet.db.engine import writing
from carnet.fhir.models import idx_string
from carnet.settings import Settings
from tests.spec.helpers import FHIR_JSON, patient

LOCK_SECONDS = 0.5  # a short wait, so that the refused write is quick to see
# Readers beside the huge write wait for its lock (for their audit event): long enough for the
# clipped write on a loaded machine, far less than the unclipped one held it (tens of seconds).
READER_LOCK_SECONDS = 5.0


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    huge = request.function.__name__ == "test_huge_indexed_string_does_not_lock_readers"
    return settings.with_(
        write_lock_seconds=READER_LOCK_SECONDS if huge else LOCK_SECONDS, max_indexed_chars=1024
    )


def _patients(client: TestClient) -> int:
    return int(client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"])


def test_writer_lock_timeout_answers_503_with_retry_after(
    client: TestClient, services: Services, backend: str
) -> None:
    with writing(services.engine) as holder:  # another writer keeps the lock
        if backend == "postgres":
            holder.execute(text("LOCK TABLE fhir_resource IN EXCLUSIVE MODE"))
        started = time.monotonic()
        busy = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
        waited = time.monotonic() - started
    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"].isdigit()
    assert busy.json()["resourceType"] == "OperationOutcome"
    assert busy.json()["issue"][0]["code"] == "transient"
    assert waited < 10 * LOCK_SECONDS + 5  # bounded by the setting, not the old 10 s
    assert _patients(client) == 0  # nothing was stored
    again = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
    assert again.status_code == 201, again.text


def test_huge_indexed_string_does_not_lock_readers(
    client: TestClient, services: Services, tmp_path: Path
) -> None:
    """A 6 MB description is indexed by its first characters: the write is quick, its index rows
    few, and requests running beside it (reads take the lock for their audit event) succeed."""
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    words = " ".join(f"mot{i:07d}" for i in range(600_000))  # 6.6 MB, mostly distinct trigrams
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{pid}"},
        "description": words,
        "content": [{"attachment": {"contentType": "text/plain", "url": "urn:example:cr"}}],
    }
    failures: list[int] = []
    done = threading.Event()

    def read_meanwhile() -> None:
        while not done.is_set():
            status = client.get(f"/fhir/Patient/{pid}").status_code
            if status != 200:
                failures.append(status)

    reader = threading.Thread(target=read_meanwhile)
    reader.start()
    try:
        created = client.post("/fhir/DocumentReference", json=document, headers=FHIR_JSON)
    finally:
        done.set()
        reader.join()
    assert created.status_code == 201, created.text
    assert failures == []
    doc_id = created.json()["id"]
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(idx_string)
            .where(idx_string.c.res_type == "DocumentReference", idx_string.c.res_id == doc_id)
        ).scalar_one()
    assert rows <= 1024 + 64  # trigrams of the first 1024 characters, prefixes, exact hash
    found = client.get("/fhir/DocumentReference", params={"description": "mot0000000 mot"})
    assert found.json()["total"] == 1  # still found by its beginning
    exact = client.get("/fhir/DocumentReference", params={"description:exact": words[:2000]})
    assert exact.json()["total"] == 0
