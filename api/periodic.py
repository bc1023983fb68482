"""Background jobs run while the app is up: audit sequencing and checkpoints, detection...

Each job runs in a thread of its own rather than as an asyncio task: the work is synchronous
database code and must not hold the event loop. A job reads ``services`` on every run, so it
follows whatever database and clock the app serves. A failed run is logged and retried at
the next tick: jobs are idempotent and resume from what the database says.

On PostgreSQL several workers and replicas serve one database, and each job must run in one
of them only: before each run, a process makes sure it holds the job's advisory lock
(``pg_try_advisory_lock``, session-level, on a connection of its own kept open for that). The
first process to ask holds it and runs the job; the others ask again at each tick. When the
holder dies its connection closes and PostgreSQL releases the lock, so another process takes
over at its next tick. On SQLite one process serves (``relais serve`` refuses more), as before.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.services import Services
from relais.core.db import normalize_database_url
from relais.core.observability import safe_exception_fields

log = structlog.get_logger("api.periodic")


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    # Seconds between runs, read from the settings at startup; 0 or less disables the job.
    interval: Callable[[Services], float]
    # One run. ``wait(seconds)`` sleeps unless the app is stopping (then returns True).
    run: Callable[[Services, Callable[[float], bool]], None]


def lock_key(job_name: str) -> int:
    """The job's advisory lock key: a stable signed 64-bit number derived from its name."""
    digest = hashlib.sha256(f"relais.periodic:{job_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """The advisory locks this process holds, one per job, on one dedicated connection.

    Outside the pool on purpose: a session-level lock lives as long as its connection, which a
    pool would hand to requests and recycle. Autocommit, so the connection never sits idle in a
    transaction.
    """

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(normalize_database_url(database_url), poolclass=NullPool)
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._held: set[str] = set()

    def lead(self, job_name: str) -> bool:
        """Whether this process runs ``job_name`` now: it holds the lock, or just took it."""
        with self._lock:
            try:
                connection = self._connect()
                if job_name in self._held:
                    # Still ours only if the connection is: a lost connection lost its locks.
                    connection.execute(text("SELECT 1"))
                    return True
                taken = connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(job_name)}
                ).scalar_one()
            except SQLAlchemyError as exc:
                if self._held:
                    log.warning("periodic_leadership_lost", jobs=sorted(self._held), **safe_exception_fields(exc))
                self._disconnect()
                return False
            if taken:
                self._held.add(job_name)
                log.info("periodic_leadership_taken", job=job_name)
            return bool(taken)

    def close(self) -> None:
        with self._lock:
            self._disconnect()
        self._engine.dispose()

    def _connect(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _disconnect(self) -> None:
        # Closing the connection releases every lock it held, for the other processes to take.
        self._held.clear()
        if self._connection is not None:
            try:
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None


class BackgroundJobs:
    """ASGI middleware starting the jobs after lifespan startup and stopping them at shutdown."""

    def __init__(self, app: ASGIApp, services: Services, jobs: Sequence[PeriodicJob]) -> None:
        self.app = app
        self.services = services
        self.jobs = tuple(jobs)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._leadership: Leadership | None = None

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
        if self.services.database.dialect == "postgresql":
            self._leadership = Leadership(self.services.database.url)
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
        if self._leadership is not None:
            self._leadership.close()
            self._leadership = None

    def _loop(self, job: PeriodicJob, interval: float) -> None:
        while not self._stop.wait(interval):
            leadership = self._leadership
            if leadership is not None and not leadership.lead(job.name):
                continue
            try:
                job.run(self.services, self._stop.wait)
            except Exception as exc:
                log.error("periodic_job_failed", job=job.name, **safe_exception_fields(exc))
