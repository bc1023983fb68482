"""A few of psycopg's asynchronous read-only connections to a PostgreSQL database, for one
event loop.

Reads done on the event loop (``relais.core.loop_reads``) need no thread hand-off, no pooled
SQLAlchemy connection and no ORM: for the hottest reads those cost more CPU than the read itself.
Several connections rather than one: on a single connection each statement waits for the one
before it to come back, and every round trip then costs its own wake-up of the loop (8
concurrent searches on PostgreSQL took 35 to 45 % less CPU each with 4 connections than with 1).

A connection is taken idle, or opened while fewer than SIZE are, or handed over by the next
statement that ends. Any connection error closes them all and the database is not asked again
for RETRY_AFTER_SECONDS (a database that is down is not hammered on every call): ``checkout``
answers None meanwhile, and the caller does its work the usual way, in a worker thread.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

# Seconds during which a failed database is not asked again.
RETRY_AFTER_SECONDS = 1.0
# Connections open at most.
SIZE = 4

Connection = psycopg.AsyncConnection[Any]


class LoopConnections:
    """Connections belonging to the event loop that opened them; closed from any thread."""

    def __init__(self, engine: Engine) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[Connection] = []
        # Every connection open (idle or in use), with what closes it if this object is dropped.
        self._open: dict[Connection, weakref.finalize[Any, Any]] = {}
        self._opening = 0
        # Work waiting for a connection, served in turn as work ends (None: do it without).
        self._waiting: deque[asyncio.Future[Connection | None]] = deque()
        self._retry_after = 0.0

    async def checkout(self) -> Connection | None:
        """A connection for this caller alone until ``checkin``, ``discard`` or ``failed``;
        None when the database failed a moment ago (or was closed while waiting)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A connection belongs to the loop that opened it (tests run several loops).
            self.close()
            self._loop = loop
        if self._idle:
            return self._idle.pop()
        if loop.time() < self._retry_after:
            return None
        if len(self._open) + self._opening < SIZE:
            return await self._connect(loop)
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except BaseException:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if handed is not None:
                self.checkin(handed)  # handed over just as this caller was cancelled
            raise

    def checkin(self, connection: Connection) -> None:
        """Done with it, in a clean state: the next waiting caller gets it, or it waits idle."""
        if connection not in self._open:
            return  # closed meanwhile (with the database, or the loop changed)
        if not self._wake_one(connection):
            self._idle.append(connection)

    def discard(self, connection: Connection) -> None:
        """Done with it, in an unknown state (its caller was cancelled mid-statement)."""
        finalizer = self._open.pop(connection, None)
        if finalizer is not None:
            finalizer.detach()
        if not connection.closed:
            connection.pgconn.finish()
        # The next waiting caller does its work without (it would open one in its place).
        self._wake_one(None)

    def failed(self, connection: Connection | None) -> None:
        """The database failed: every connection is closed, and for a while none is opened."""
        loop = self._loop
        self.close()
        if connection is not None and not connection.closed:
            connection.pgconn.finish()
        if loop is not None:
            self._retry_after = loop.time() + RETRY_AFTER_SECONDS

    def close(self) -> None:
        """Close every connection at once, from any thread (as ``Engine.dispose`` does its
        pool's: a later ``checkout`` opens a new one). libpq's own close works from any loop or
        none, which ``AsyncConnection.close`` does not."""
        connections, self._open, self._idle = self._open, {}, []
        waiting, self._waiting = self._waiting, deque()
        self._loop = None
        for connection, finalizer in connections.items():
            finalizer.detach()
            if not connection.closed:
                connection.pgconn.finish()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection | None:
        self._opening += 1
        try:
            # Read-only, in autocommit: nothing is ever written through these connections, and
            # each read sees what was committed before it.
            connection = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=5, options="-c default_transaction_read_only=on"
            )
        except (psycopg.Error, OSError):
            self.failed(None)
            return None
        finally:
            self._opening -= 1
        if self._loop is not loop:  # closed, or moved on to another loop, while connecting
            connection.pgconn.finish()
            return None
        # Dropped without ``close`` (its database never disposed), this object still closes its
        # connections, before the garbage collector finds them open (psycopg warns then).
        self._open[connection] = weakref.finalize(self, connection.pgconn.finish)
        return connection

    def _wake_one(self, value: Connection | None) -> bool:
        """Hand ``value`` to the first caller still waiting; False when none is."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return True
        return False
