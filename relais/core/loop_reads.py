"""The hottest reads, done on the event loop, with no thread hand-off.

A call's own unit of work is synchronous SQLAlchemy, run in a worker thread; for the hottest
reads (the habilitation policy version, Rechercher usager's candidates) that hand-off, the
pooled connection's checkout and the ORM's execution cost more CPU than the read itself. This
reader answers them on the event loop instead, through connections of its own, in autocommit,
outside any call's transaction. It therefore sees the last committed state, as a call's own
transaction would: a change committed before the call started is seen.

- **PostgreSQL**: a few of asyncpg's connections (``relais.core.loop_connections``).
- **SQLite file**: a second ``sqlite3`` connection, read-only (``PRAGMA query_only``). In WAL
  mode a reader waits for no writer, nor for the single pooled connection (the writers'), and
  with no busy timeout a rare busy answer is an error at once, never a wait on the loop.

Any error answers None; the caller then reads in its own transaction, in a worker thread, as it
would without this reader. After a PostgreSQL error the database is not asked again for a second
(a database that is down is not hammered on every call). An in-memory SQLite database has no
reader (a second connection would see another database).

Values come back as a session would return them (SQLAlchemy's result processing of each selected
column: JSON decoded, SQLite's dates parsed), and parameters go in as a session would bind them.
Statements with expanding parameters (``IN`` lists) are not supported.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Select

from relais.core.driver_sql import DriverStatement, Processor, driver_statement
from relais.core.loop_connections import ERRORS, LoopConnections

# Compiled statements kept (past it, they are compiled again).
MAX_STATEMENTS = 100


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled for the reader's dialect, with what binds its values and reads its rows."""

    driver: DriverStatement
    compiled: SQLCompiler
    statement: ClauseElement
    # Every parameter's value as compiled (literal values, and None for named ones).
    defaults: Mapping[str, Any]
    readers: Sequence[Processor | None]

    def bind_constant(self, values: Mapping[str, Any] | None) -> Any:
        """The driver's values for the very statement compiled (a constant of the caller's): its
        own literal values are the compiled ones, and only the named values change."""
        return self.driver.bind({**self.defaults, **values} if values else self.defaults)


class LoopReader:
    """A database's reads on the event loop: connections opened at the first read, closed with
    the database."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._statements: dict[Any, _Prepared] = {}
        # The same, by ``id`` of the very statement compiled (``_prepared``).
        self._constants: dict[int, _Prepared] = {}

    async def rows(
        self, statement: ClauseElement | str, values: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]] | None:
        """Every row of a read, or None when it could not be done here (then read in a session).

        ``values`` are those of the statement's named ``bindparam``: a statement built once and
        run with each call's values is compiled once. A plain text takes no values.
        """
        if isinstance(statement, str):
            return await self._fetch(statement, None)
        prepared, bound = self._prepared(statement, values)
        found = await self._fetch(prepared.driver.sql, bound)
        if found is None or not any(prepared.readers):
            return found
        readers = prepared.readers
        return [
            tuple(value if read is None else read(value) for read, value in zip(readers, row, strict=True))
            for row in found
        ]

    async def scalar(self, sql: str) -> Any | None:
        """The first column of the first row of a read; None when none or not readable here.

        The read is sent after this call began: it sees every change committed before. Callers
        asking the same at the same moment may share one read (``PostgresLoopReader``)."""
        found = await self.rows(sql)
        return found[0][0] if found else None

    def close(self) -> None:
        """Close the connection at once, from any thread (as ``Engine.dispose`` does its pool's:
        a later read opens a new one)."""

    async def _fetch(self, sql: str, values: Any) -> list[tuple[Any, ...]] | None:
        raise NotImplementedError

    def _prepared(self, statement: ClauseElement, values: Mapping[str, Any] | None) -> tuple[_Prepared, Any]:
        # A constant statement of the caller's, seen before: known by identity (its prepared
        # form holds it, so the id is not reused meanwhile), without working out its cache key,
        # which costs more than the rest of this method.
        known = self._constants.get(id(statement))
        if known is not None and known.statement is statement:
            return known, known.bind_constant(values)
        # Compiled once per shape of statement (SQLAlchemy's cache key, as the engine's own
        # cache does): compiling costs more than the read. The shapes are the callers' few.
        key = statement._generate_cache_key()
        if key is None:  # a statement SQLAlchemy cannot cache: compiled each time
            prepared = self._compile(statement, None)
            return prepared, prepared.driver.bind(prepared.compiled.construct_params(params=values))
        prepared = self._statements.get(key.key)  # type: ignore[assignment]
        if prepared is None:
            if len(self._statements) >= MAX_STATEMENTS:
                self._statements.clear()
                self._constants.clear()
            prepared = self._statements[key.key] = self._compile(statement, key)
        if statement is prepared.statement:
            self._constants[id(statement)] = prepared
            return prepared, prepared.bind_constant(values)
        params = prepared.compiled.construct_params(params=values, extracted_parameters=key.bindparams)
        return prepared, prepared.driver.bind(params)

    def _compile(self, statement: ClauseElement, key: Any) -> _Prepared:
        dialect = self._dialect
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, cache_key=key))
        columns = statement.selected_columns if isinstance(statement, Select) else ()
        readers = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        defaults = compiled.construct_params(_check=False)
        return _Prepared(driver_statement(compiled, dialect), compiled, statement, defaults, readers)


class PostgresLoopReader(LoopReader):
    """asyncpg's connections (``LoopConnections``), read-only, outside any transaction.

    Statements are compiled by SQLAlchemy's asyncpg dialect (``$n`` parameters, each cast to its
    type, which asyncpg's prepared statements need), values bound and rows read as that dialect
    does: the engine's own dialect (psycopg) would bind and read them for another driver.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(asyncpg_dialect())
        self._connections = LoopConnections(engine)
        # The shared reads not sent yet, by loop and text: a caller joins one of them, never a
        # read already sent (it might not see what was committed just before the caller asked).
        self._unsent: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Any]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def scalar(self, sql: str) -> Any | None:
        """One read for every caller asking the same text before it is sent: the policy version
        is read by every call, and calls arrive together (eight of them, woken by the same
        commit, each read it apart). Each caller still gets a read sent after it asked."""
        loop = asyncio.get_running_loop()
        key = (loop, sql)
        shared = self._unsent.get(key)
        if shared is None:
            shared = self._unsent[key] = loop.create_future()
            task = loop.create_task(self._read_shared(key, shared))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        # Shielded: a caller cancelled while waiting must not cancel the others' read.
        return await asyncio.shield(shared)

    async def _read_shared(self, key: tuple[asyncio.AbstractEventLoop, str], shared: asyncio.Future[Any]) -> None:
        # Closed to newcomers before anything is sent: whoever joined asked before the read.
        del self._unsent[key]
        try:
            found = await self.rows(key[1])
        except asyncio.CancelledError:
            shared.cancel()  # the loop is shutting down: so are its callers
            raise
        except Exception as error:  # a bug: handed to the callers, who raise it
            shared.set_exception(error)
        else:
            shared.set_result(found[0][0] if found else None)

    async def _fetch(self, sql: str, values: Any) -> list[tuple[Any, ...]] | None:
        try:
            found = await self._connections.run(lambda connection: connection.fetch(sql, *(values or ())))
        except ERRORS:
            return None  # the connections are closed, and the caller reads in its session
        return None if found is None else [tuple(row) for row in found]

    def close(self) -> None:
        self._connections.close()


class SqliteLoopReader(LoopReader):
    """A read-only ``sqlite3`` connection on the database's file, opened once the file exists.

    A read is a call into SQLite's library from the loop: an indexed lookup in a file the page
    cache holds, shorter than a thread hand-off. Nothing is ever written through it.
    """

    def __init__(self, engine: Engine, path: str) -> None:
        super().__init__(engine.dialect)
        self._path = path
        self._connection: sqlite3.Connection | None = None

    async def _fetch(self, sql: str, values: Any) -> list[tuple[Any, ...]] | None:
        connection = self._connection or self._connect()
        if connection is None:
            return None
        try:
            return connection.execute(sql, values or ()).fetchall()
        except sqlite3.Error:
            # Busy at this very moment (rare in WAL mode), or the file went away: the caller
            # reads in its session; the connection is kept unless it is broken.
            return None

    def _connect(self) -> sqlite3.Connection | None:
        if not Path(self._path).is_file():
            return None  # not created yet: look again at the next read
        try:
            connection = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA query_only=ON")
        except sqlite3.Error:
            return None
        self._connection = connection
        return connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def loop_reader_for(engine: Engine) -> LoopReader | None:
    """The engine's reader: PostgreSQL's, a SQLite file's, or None (an in-memory SQLite)."""
    if engine.dialect.name == "postgresql":
        return PostgresLoopReader(engine)
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path and path != ":memory:" and not path.startswith("file:"):
        return SqliteLoopReader(engine, path)
    return None
