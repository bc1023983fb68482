"""A few of asyncpg's connections to a PostgreSQL database, for one event loop.

Reads done on the event loop (``relais.core.loop_reads``) and the group commit of audit events
(``api.audit_batches.AuditBatches``, ``audit.batch_appends.OpenBatch``) need no thread
hand-off, no pooled SQLAlchemy connection and no ORM: for the hottest statements those cost more
CPU than the statement itself. Reading connections are read-only; writing ones are a set of
their own.

- **asyncpg**, not psycopg's asynchronous connections: asyncpg's protocol reads the socket in
  the loop's own callbacks and keeps each statement prepared, where psycopg registers and
  removes a reader with the loop for every wait. With 8 statements in flight on 4 connections,
  asyncpg costs 27 to 30 µs of CPU per statement, psycopg 55 to 75 µs.
- **Several connections** rather than one: on a single connection each statement waits for the
  one before it to come back, and every round trip then costs its own wake-up of the loop (8
  concurrent searches took 35 to 45 % less CPU each with 4 connections than with 1).

A connection is taken idle, or opened while fewer than SIZE are, or handed over by the next
statement that ends. Any connection error closes them all and the database is not asked again
for RETRY_AFTER_SECONDS (a database that is down is not hammered on every call): ``checkout``
answers None meanwhile, and the caller does its work the usual way, in a worker thread.

An asyncpg connection can only be closed on its loop. ``close`` may come from another thread
(the tests' client runs the app's loop in a thread of its own): it is then handed to the loop.
And a loop that shuts down (``asyncio.run``, uvicorn, anyio's portal all cancel the tasks left)
cancels this object's watcher task, which closes the connections on it, before it is too late.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import asyncpg
import structlog
from sqlalchemy.engine import Engine

from relais.core.observability import safe_exception_fields

# Seconds during which a failed database is not asked again.
RETRY_AFTER_SECONDS = 1.0
# Connections open at most.
SIZE = 4
# Prepared statements kept by each connection (asyncpg's own cache).
STATEMENTS = 100
# Seconds a statement may take before it counts as failed: a database that hangs fails the
# calls waiting on it (their audit event is not written: a 500) rather than holding them forever.
# SQLite's writers wait as long for its lock (``busy_timeout``).
STATEMENT_TIMEOUT_SECONDS = 30.0
# How these connections show in ``pg_stat_activity``.
READS_APPLICATION_NAME = "relais-loop-reads"
WRITES_APPLICATION_NAME = "relais-loop-writes"

if TYPE_CHECKING:
    # Generic in asyncpg-stubs only (the record class rows come in).
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
else:
    Connection = asyncpg.Connection

log = structlog.get_logger("relais.db")
T = TypeVar("T")

# What a failed connection or statement raises (a timeout while connecting included).
ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


class _OnLoop:
    """The connections of one event loop, used on that loop only."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: list[Connection] = []
        self.open: set[Connection] = set()
        self.opening = 0
        # Work waiting for a connection, served in turn as work ends (None: do it without).
        self.waiting: deque[asyncio.Future[Connection | None]] = deque()
        self.closed = False
        self.watcher = loop.create_task(self._close_at_shutdown())

    async def _close_at_shutdown(self) -> None:
        try:
            await self.loop.create_future()  # never set: cancelled when the loop shuts down
        finally:
            self.close_here()

    def close_here(self) -> None:
        """Close every connection, on the loop's own thread."""
        self.closed = True
        connections, self.open, self.idle = self.open, set(), []
        for connection in connections:
            connection.terminate()
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self.watcher.cancel()

    def close_from_anywhere(self) -> None:
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if here or not self.loop.is_running():
            # On the loop, or on none (its watcher already closed them if it shut down).
            if not self.loop.is_closed():
                self.close_here()
            return
        try:
            self.loop.call_soon_threadsafe(self.close_here)
        except RuntimeError:
            pass  # the loop closed meanwhile: its watcher closed the connections


class LoopConnections:
    """Connections belonging to the event loop that opened them; closed from any thread."""

    def __init__(self, engine: Engine, *, writes: bool = False) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        # Read-only unless meant for writing: nothing is ever written through a reader's.
        self._settings = (
            {"application_name": WRITES_APPLICATION_NAME}
            if writes
            else {"default_transaction_read_only": "on", "application_name": READS_APPLICATION_NAME}
        )
        self._on: _OnLoop | None = None
        self._retry_after = 0.0
        # Failing since the last connection opened: said once in the log, not at every retry.
        self._failing = False

    async def checkout(self) -> Connection | None:
        """A connection for this caller alone until ``checkin``, ``discard`` or ``failed``;
        None when the database failed a moment ago (or was closed while waiting)."""
        on = self._on
        if on is None or on.loop is not asyncio.get_running_loop():
            # A connection belongs to the loop that opened it (tests run several loops).
            self.close()
            on = self._on = _OnLoop(asyncio.get_running_loop())
        while on.idle:
            connection = on.idle.pop()
            if not connection.is_closed():
                return connection
            on.open.discard(connection)  # ended while idle (the server restarted, say)
        if on.loop.time() < self._retry_after:
            return None
        if len(on.open) + on.opening < SIZE:
            return await self._connect(on)
        waiter: asyncio.Future[Connection | None] = on.loop.create_future()
        on.waiting.append(waiter)
        try:
            return await waiter
        except BaseException:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if handed is not None:
                self.checkin(handed)  # handed over just as this caller was cancelled
            raise

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T | None:
        """``work`` done on a connection of its own; None when none could be had (the database
        failed a moment ago: the caller does its work the usual way). A database error closes
        every connection (``failed``) and is raised; work that ends otherwise mid-way (cancelled)
        leaves its connection closed (``discard``), its state unknown."""
        connection = await self.checkout()
        if connection is None:
            return None
        try:
            done = await work(connection)
        except ERRORS as error:
            self.failed(connection, error)
            raise
        except BaseException:
            self.discard(connection)
            raise
        self.checkin(connection)
        return done

    def checkin(self, connection: Connection) -> None:
        """Done with it, in a clean state: the next waiting caller gets it, or it waits idle."""
        on = self._on
        if on is None or connection not in on.open:
            return  # closed meanwhile (with the database, or the loop changed)
        if not self._wake_one(on, connection):
            on.idle.append(connection)

    def discard(self, connection: Connection) -> None:
        """Done with it, in an unknown state (its caller was cancelled mid-statement)."""
        connection.terminate()
        on = self._on
        if on is not None and connection in on.open:
            on.open.discard(connection)
            # The next waiting caller does its work without (it would open one in its place).
            self._wake_one(on, None)

    def failed(self, connection: Connection | None, error: BaseException | None = None) -> None:
        """The database failed: every connection is closed, and for a while none is opened."""
        if not self._failing:
            # Calls go on, in worker threads: slower, not refused. An operator should know
            # (a URL parameter asyncpg does not take, say), once, not at every retry.
            self._failing = True
            fields = safe_exception_fields(error) if error is not None else {}
            log.warning("loop_connections_failed", purpose=self._settings["application_name"], **fields)
        on = self._on
        if connection is not None:
            connection.terminate()
        self.close()
        if on is not None:
            self._retry_after = on.loop.time() + RETRY_AFTER_SECONDS

    def close(self) -> None:
        """Close every connection, from any thread (as ``Engine.dispose`` does its pool's: a
        later ``checkout`` opens a new one)."""
        on, self._on = self._on, None
        if on is not None:
            on.close_from_anywhere()

    async def _connect(self, on: _OnLoop) -> Connection | None:
        on.opening += 1
        connection = None
        try:
            # Outside any transaction, each read sees what was committed before it.
            connection = await asyncpg.connect(
                self._url,
                timeout=5,
                command_timeout=STATEMENT_TIMEOUT_SECONDS,
                statement_cache_size=STATEMENTS,
                server_settings=self._settings,
            )
            await _decode_json(connection)
        except ERRORS as error:
            if connection is not None:
                connection.terminate()
            self.failed(None, error)
            return None
        finally:
            on.opening -= 1
        if on.closed:  # closed, or moved on to another loop, while connecting
            connection.terminate()
            return None
        on.open.add(connection)
        if self._failing:
            self._failing = False
            log.info("loop_connections_restored", purpose=self._settings["application_name"])
        return connection

    @staticmethod
    def _wake_one(on: _OnLoop, value: Connection | None) -> bool:
        """Hand ``value`` to the first caller still waiting; False when none is."""
        while on.waiting:
            waiter = on.waiting.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return True
        return False


async def _decode_json(connection: Connection) -> None:
    """JSON values come back decoded and go in as the text SQLAlchemy serialised, as with
    SQLAlchemy's own asyncpg dialect (whose compiler renders the reader's statements)."""
    await connection.set_type_codec(
        "json", encoder=str.encode, decoder=lambda raw: json.loads(raw.decode()), schema="pg_catalog", format="binary"
    )
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda raw: json.loads(raw[1:].decode()),
        schema="pg_catalog",
        format="binary",
    )
