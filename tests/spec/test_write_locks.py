"""Writers and locks: a write that cannot get the database lock in time answers 503 with
Retry-After (not a 500), a huge indexed string no longer holds the lock long enough to make
concurrent requests fail, and a reader never waits for a writer (on SQLite its audit event goes to
the audit spool while the lock is held) yet every access it made is in the audit log."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from carnet.app import Services
from carnet.audit.models import audit_event
from carnet.audit.verify import verify
from carnet.db.engine import writing
from carnet.fhir.models import idx_string
from carnet.settings import Settings
from tests.spec.helpers import FHIR_JSON, observation, patient

LOCK_SECONDS = 0.5  # a short wait, so that the refused write is quick to see
# Writers beside the huge write wait for its lock (readers no longer do: their events are spooled):
# long enough for the clipped write on a loaded machine, far less than the unclipped one held it
# (tens of seconds).
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
    few, and requests running beside it succeed."""
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


def _hold_lock(services: Services, backend: str) -> Any:
    """Another writer holding the lock (on PostgreSQL, the resource table's write lock)."""
    holder = writing(services.engine)
    conn = holder.__enter__()
    if backend == "postgres":
        conn.execute(text("LOCK TABLE fhir_resource IN EXCLUSIVE MODE"))
    return holder


def _logged(services: Services) -> list[dict[str, Any]]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(audit_event.c.body).order_by(audit_event.c.seq)).scalars()
        return [orjson.loads(b) for b in rows]


def test_reader_never_fails_while_a_long_writer_holds_the_lock(
    client: TestClient, services: Services, backend: str
) -> None:
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    client.post("/fhir/Observation", json=observation(pid), headers=FHIR_JSON)
    reads = [
        (f"/fhir/Patient/{pid}", "read"),
        (f"/fhir/Observation?subject=Patient/{pid}", "search"),
        (f"/fhir/Patient/{pid}/$everything", "everything"),
        (f"/fhir/Patient/{pid}/_history", "history"),
        (f"/fhir/Patient/{pid}/_history/1", "vread"),
        ("/fhir/Patient/not-there", "read"),  # a refused read (404) is an access too
    ]
    holder = _hold_lock(services, backend)
    try:
        time.sleep(LOCK_SECONDS * 1.5)  # longer than any writer waits
        answers = [client.get(url) for url, _ in reads]
    finally:
        holder.__exit__(None, None, None)
    # A read that waited for the lock would have waited LOCK_SECONDS, then answered 503: the
    # statuses prove no read waited (a bound on their time only measured the machine's load).
    assert [r.status_code for r in answers] == [200] * 5 + [404], [r.text for r in answers]
    services.audit.flush()  # the writer is gone: the spool drains
    logged = [(e["action"], e["outcome"]) for e in _logged(services)]
    for (_, action), answer in zip(reads, answers, strict=True):
        assert (action, answer.status_code) in logged
    assert logged.count(("read", 200)) == 1 and logged.count(("read", 404)) == 1
    assert verify(services.audit).ok


def test_access_history_shows_a_spooled_read(
    client: TestClient, services: Services, backend: str
) -> None:
    """A read answered while a writer held the lock is in the patient's history at once, though
    its event still waits in the spool (SQLite), and in the log once the writer is done."""
    pid = client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    holder = _hold_lock(services, backend)
    try:
        assert client.get(f"/fhir/Patient/{pid}").status_code == 200
        if backend == "sqlite":
            assert services.audit.spool is not None and services.audit.spool.count() == 1
        history = client.get("/fhir/AuditEvent", params={"patient": pid})
        one = client.get(f"/fhir/AuditEvent/{history.json()['entry'][1]['resource']['id']}")
    finally:
        holder.__exit__(None, None, None)
    assert history.status_code == 200, history.text
    subtypes = [
        e["resource"]["subtype"][0]["code"] for e in history.json()["entry"]
    ]  # newest first: reading the history, the read, the create
    assert subtypes[:3] == ["search-type", "read", "create"]
    assert history.json()["total"] == 3
    assert one.status_code == 200, one.text
    assert one.json()["subtype"][0]["code"] == "read"
    services.audit.flush()
    after = client.get("/fhir/AuditEvent", params={"patient": pid}).json()
    assert [e["resource"]["id"] for e in after["entry"][2:5]] == [
        e["resource"]["id"] for e in history.json()["entry"]
    ]
    assert verify(services.audit).ok


def test_a_paged_search_answers_while_a_writer_holds_the_lock(
    client: TestClient, services: Services, backend: str
) -> None:
    """The first page of a longer search keeps a paging snapshot only if it can write it at
    once: beside a writer on SQLite it answers all the same, its links reading live results."""
    for given in ("Anne", "Marie", "Lucie"):
        client.post("/fhir/Patient", json=patient(given=given), headers=FHIR_JSON)
    holder = _hold_lock(services, backend)
    try:
        first = client.get("/fhir/Patient", params={"_count": "2"})
        if first.status_code == 200:
            following = next(
                link["url"] for link in first.json()["link"] if link["relation"] == "next"
            )
            second = client.get(following.removeprefix("http://127.0.0.1"))
    finally:
        holder.__exit__(None, None, None)
    assert first.status_code == 200, first.text
    assert first.json()["total"] == 3 and len(first.json()["entry"]) == 2
    assert ("_snapshot=" in following) is (backend == "postgres")
    assert second.status_code == 200, second.text
    assert len(second.json()["entry"]) == 1
