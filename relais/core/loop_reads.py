"""PostgreSQL reads done on the event loop, with no thread hand-off.

A call's own unit of work is synchronous SQLAlchemy, run in a worker thread; for the hottest
reads (the habilitation policy version, Rechercher usager's candidates) that hand-off, the
pooled connection's checkout and its ping cost more CPU than the read itself. This reader
answers them on the event loop instead, through one connection of its own: psycopg's
asynchronous one, in autocommit, outside any call's transaction. It therefore sees the last
committed state, as a call's own transaction would: a change committed before the call started
is seen. Concurrent reads queue on it (each is one indexed lookup).

Any error closes the connection and answers None; the caller then reads in its own
transaction, in a worker thread, as it would without this reader, and the database is not
asked again for a second (a database that is down is not hammered on every call).

What it returns are the driver's values (psycopg's), with none of SQLAlchemy's type processing:
callers pick columns whose driver values are already what they need (text, numbers, dates,
JSON). Statements with expanding parameters (``IN`` lists) are not supported.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy.engine import Compiled, Engine
from sqlalchemy.sql.expression import ClauseElement

# Seconds during which a failed database is not asked again.
RETRY_AFTER_SECONDS = 1.0
# Compiled statements kept (past it, they are compiled again).
MAX_STATEMENTS = 100


class LoopReader:
    """One asynchronous connection per database, opened at the first read, closed with it."""

    def __init__(self, engine: Engine) -> None:
        self._dialect = engine.dialect
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Calls arriving together open one connection, not one each.
        self._opening: asyncio.Lock | None = None
        self._retry_after = 0.0
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._statements: dict[Any, Compiled] = {}

    async def rows(
        self, statement: ClauseElement | str, values: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]] | None:
        """Every row of a read, or None when it could not be done here (then read in a session).

        ``values`` are those of the statement's named ``bindparam`` (or of the text's
        ``%(name)s``): a statement built once and run with each call's values is compiled once.
        """
        sql, params = (statement, values) if isinstance(statement, str) else self._compiled(statement, values)
        connection = await self._connect()
        if connection is None:
            return None
        try:
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall()
        except (psycopg.Error, OSError):
            self._failed()
            return None

    def _compiled(
        self, statement: ClauseElement, values: Mapping[str, Any] | None
    ) -> tuple[str, Mapping[str, Any] | None]:
        # Compiled once per shape of statement (SQLAlchemy's cache key, as the engine's own
        # cache does): compiling costs more than the read. The shapes are the callers' few.
        key = statement._generate_cache_key()
        if key is None:  # a statement SQLAlchemy cannot cache: compiled each time
            compiled = statement.compile(dialect=self._dialect)
            return compiled.string, compiled.construct_params(params=values)
        known = self._statements.get(key.key)
        if known is None:
            if len(self._statements) >= MAX_STATEMENTS:
                self._statements.clear()
            known = self._statements[key.key] = statement.compile(dialect=self._dialect, cache_key=key)
        return known.string, known.construct_params(params=values, extracted_parameters=key.bindparams)

    async def scalar(self, sql: str) -> Any | None:
        """The first column of the first row of a read; None when none or not readable here."""
        found = await self.rows(sql)
        return found[0][0] if found else None

    def close(self) -> None:
        """Close the connection at once, from any thread or loop (as ``Engine.dispose`` does
        its pool's: a later read opens a new one)."""
        self._drop()

    async def _connect(self) -> psycopg.AsyncConnection[Any] | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._opening is None:
            # A connection belongs to the loop that opened it (tests run several loops).
            self._drop()
            self._loop = loop
            self._opening = asyncio.Lock()
        if self._connection is not None:
            return self._connection
        async with self._opening:
            if self._connection is not None:
                return self._connection
            if loop.time() < self._retry_after:
                return None
            try:
                connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=5)
            except (psycopg.Error, OSError):
                self._failed()
                return None
            if self._loop is not loop:  # moved on to another loop while connecting
                connection.pgconn.finish()
                return None
            self._connection = connection
            # A reader dropped without ``close`` (its database never disposed) still closes its
            # connection, before the garbage collector finds it open (psycopg warns then).
            self._finalizer = weakref.finalize(self, connection.pgconn.finish)
            return connection

    def _failed(self) -> None:
        self._drop()
        if self._loop is not None:
            self._retry_after = self._loop.time() + RETRY_AFTER_SECONDS

    def _drop(self) -> None:
        # libpq's own close: works from any loop or none, which ``AsyncConnection.close`` does not.
        connection, self._connection = self._connection, None
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.detach()
        if connection is not None and not connection.closed:
            connection.pgconn.finish()
