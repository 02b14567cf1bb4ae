"""The server queues the patients' alerts itself: a served app's background sweep puts an
emergency-access alert in the outbox with no `carnet accounts sweep`, stops with the app, and
waits for a sweep in flight rather than cutting it."""

from __future__ import annotations

import asyncio
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from carnet.app import Services, create_app
from carnet.record import notifications as templates
from carnet.record.alert_sweeper import AlertSweeper
from carnet.record.models import record_notification
from carnet.settings import Settings
from tests.unit.record.controls_setup import small_record

INTERVAL = 0.1


def _alerts_of(services: Services, patient: str) -> list[str]:
    n = record_notification.c
    with services.engine.connect() as conn:
        return list(
            conn.execute(
                select(n.kind).where(n.patient_id == patient, n.kind.like("alert-%"))
            ).scalars()
        )


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_served_app_queues_an_emergency_alert_without_the_cli_and_stops_on_shutdown(
    settings: Settings, services: Services
) -> None:
    record = small_record(services)
    app = create_app(settings.with_(alert_sweep_seconds=INTERVAL), services)
    with TestClient(app, base_url="http://127.0.0.1"):
        services.emergency.break_glass(record.as_er, record.patient, "unconscious")
        assert _wait_for(lambda: _alerts_of(services, record.patient) != [])
        assert _alerts_of(services, record.patient) == [templates.ALERT_EMERGENCY]
    # shut down: a new emergency access stays unswept for many intervals
    services.emergency.break_glass(record.as_er, record.patient, "life-threatening")
    time.sleep(INTERVAL * 8)
    assert _alerts_of(services, record.patient) == [templates.ALERT_EMERGENCY]


def test_the_sweep_is_off_when_its_interval_is_zero() -> None:
    calls: list[int] = []

    async def run() -> bool:
        sweeper = AlertSweeper(lambda: calls.append(1) or 0, 0)
        sweeper.start()
        await asyncio.sleep(0.05)
        return sweeper.running

    assert asyncio.run(run()) is False
    assert calls == []


def test_stopping_waits_for_the_sweep_in_flight_and_no_other_starts() -> None:
    began, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow_sweep() -> int:
        began.set()
        release.wait(5)
        finished.append("sweep")
        return 0

    async def run() -> tuple[bool, list[str]]:
        sweeper = AlertSweeper(slow_sweep, INTERVAL)
        sweeper.start()
        while not began.is_set():
            await asyncio.sleep(0.01)
        stopping = asyncio.create_task(sweeper.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # the sweep in flight is not cut
        release.set()
        await stopping
        return sweeper.running, list(finished)

    running, done = asyncio.run(run())
    assert running is False
    assert done == ["sweep"]


def test_a_failing_sweep_is_retried_at_the_next_interval() -> None:
    attempts: list[int] = []

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("database unreachable")
        return 0

    async def run() -> None:
        sweeper = AlertSweeper(flaky, INTERVAL / 2)
        sweeper.start()
        for _ in range(100):
            if len(attempts) >= 2:
                break
            await asyncio.sleep(0.02)
        await sweeper.stop()

    asyncio.run(run())
    assert len(attempts) >= 2
