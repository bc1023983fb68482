"""Background jobs run while the app is up: audit sequencing and checkpoints, detection...

Each job runs in a thread of its own rather than as an asyncio task: the work is synchronous
database code and must not hold the event loop. A job reads ``services`` on every run, so it
follows whatever database and clock the app serves. A failed run is logged and retried at
the next tick: jobs are idempotent and resume from what the database says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.services import Services
from relais.core.observability import safe_exception_fields

log = structlog.get_logger("api.periodic")


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    # Seconds between runs, read from the settings at startup; 0 or less disables the job.
    interval: Callable[[Services], float]
    # One run. ``wait(seconds)`` sleeps unless the app is stopping (then returns True).
    run: Callable[[Services, Callable[[float], bool]], None]


class BackgroundJobs:
    """ASGI middleware starting the jobs after lifespan startup and stopping them at shutdown."""

    def __init__(self, app: ASGIApp, services: Services, jobs: Sequence[PeriodicJob]) -> None:
        self.app = app
        self.services = services
        self.jobs = tuple(jobs)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.start()
            elif message["type"] == "lifespan.shutdown.complete":
                self.stop()
            await send(message)

        await self.app(scope, receive, watch)

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for job in self.jobs:
            interval = job.interval(self.services)
            if interval <= 0:
                continue
            thread = threading.Thread(target=self._loop, args=(job, interval), name=f"relais-{job.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def _loop(self, job: PeriodicJob, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                job.run(self.services, self._stop.wait)
            except Exception as exc:
                log.error("periodic_job_failed", job=job.name, **safe_exception_fields(exc))
