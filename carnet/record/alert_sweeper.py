"""The server's own alert sweep: the patient's alerts queued without `carnet accounts sweep`.

The app's lifespan starts one ``AlertSweeper``: every N seconds it runs the same
``AlertService.sweep`` as the CLI, in a worker thread (the sweep does blocking database work).
Any number of sweepers may run (threads, server workers, the CLI from cron): the sweep claims
the events it handles with a compare-and-set on its position, so each alert is queued once.
Stopping waits for a sweep in flight to commit or roll back, never cuts it in the middle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger("carnet.record")


class AlertSweeper:
    """Run ``sweep`` every ``every_seconds`` on the running event loop, until ``stop``."""

    def __init__(self, sweep: Callable[[], int], every_seconds: float) -> None:
        self.sweep = sweep
        self.every_seconds = every_seconds
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start sweeping (from inside the event loop, e.g. the app's lifespan)."""
        if self.every_seconds > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="carnet-alert-sweep")

    async def stop(self) -> None:
        """Stop after the sweep in flight, if any, has finished."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # the interval passed: sweep
                await asyncio.wait_for(self._stopping.wait(), timeout=self.every_seconds)
            if self._stopping.is_set():
                return
            try:
                queued = await asyncio.to_thread(self.sweep)
            except Exception as exc:  # noqa: BLE001 - a failed sweep is retried next interval
                log.warning(
                    "alert sweep failed (%s); retried in %ss",
                    type(exc).__name__,
                    self.every_seconds,
                )
            else:
                if queued:
                    log.info("alert sweep queued %d notification(s)", queued)
