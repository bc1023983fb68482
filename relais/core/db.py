"""Database engine and sessions, for the embedded SQLite default and for PostgreSQL.

Storage is synchronous SQLAlchemy: connexion runs synchronous handlers in Starlette's
thread pool, and one engine serves both the request path and the command line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, create_engine

from relais.core.loop_connections import LoopConnections
from relais.core.loop_reads import loop_reader_for
from relais.core.private_files import private_sqlite_file
from relais.core.ratelimit import ConcurrencyGate

# PostgreSQL pool: calls in flight hold at most this many connections (``Database.gate``);
# the overflow is left to the command line, the periodic jobs and the health check.
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 10
# A connection is never awaited long: the gate keeps calls from queueing on the pool, so a
# wait here means a stuck holder, and failing fast beats holding a thread for half a minute.
POOL_TIMEOUT_SECONDS = 5


def normalize_database_url(url: str) -> URL:
    """Accept the usual ``postgresql://`` spelling and pick the psycopg 3 driver for it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_db_engine(url: str) -> Engine:
    parsed = normalize_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _create_sqlite_engine(parsed)
    else:
        engine = create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=PG_POOL_SIZE,
            max_overflow=PG_MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_SECONDS,
        )
    _track_writes(engine)
    return engine


# Statements that neither change nor lock anything (a ``SELECT ... FOR UPDATE`` locks: it
# counts as a write, the caller meant to change what it locked).
_READ_PREFIXES = ("SELECT", "BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK", "SHOW", "SET ")
_WROTE = "relais_wrote"


def _track_writes(engine: Engine) -> None:
    """Note on the connection whether its current transaction sent anything but reads.

    The request pipeline commits a call that only read in a group commit of audit events
    instead of its own transaction (``api.pipeline``): it must know, whatever path the
    writes took (ORM flush, Core statement or text), that the call wrote nothing.
    """

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.info[_WROTE] = False

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        head = statement.lstrip()[:9].upper()
        if head.startswith("SELECT"):
            if "FOR UPDATE" in statement or "FOR NO KEY UPDATE" in statement:
                connection.info[_WROTE] = True
        elif not head.startswith(_READ_PREFIXES):
            connection.info[_WROTE] = True


def wrote(session: Session) -> bool:
    """Whether ``session``'s open transaction changed (or locked) anything, or would on commit.

    Costs no I/O: a session with no transaction open wrote nothing.
    """
    if session.new or session.dirty or session.deleted:
        return True
    if not session.in_transaction():
        return False
    return bool(session.connection().info.get(_WROTE, True))


def _create_sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        private_sqlite_file(Path(url.database))
    engine = create_engine(
        url,
        # Sessions hop between the event loop and the thread pool within one request.
        connect_args={"check_same_thread": False, "timeout": 30},
        # SQLite has one writer at a time and every request writes its audit event. A single
        # pooled connection queues requests in order inside the process; several connections
        # would instead race on SQLite's lock, whose busy handler sleeps and retries, and let
        # some requests wait seconds while others pass.
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECONDS,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Python 3.11's sqlite3 opens transactions lazily and outside our control; take
        # over so that every transaction is real (DDL included) and starts with the write
        # lock: each request appends an audit event, so every request is a writer anyway,
        # and taking the lock up front avoids SQLITE_BUSY on lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL survives a crash of the process but may lose the
        # last commits on a power cut or an OS crash, and a call's audit event must outlive the
        # answer it let out. The flush this costs is shared: concurrent calls that only read
        # commit their events together (``api.audit_batches.AuditBatches``), one flush per batch.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """One engine and the sessions opened on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        # The calls in flight that may hold a connection: one on SQLite (one writer anyway).
        self.gate = ConcurrencyGate(1 if self.dialect == "sqlite" else PG_POOL_SIZE)
        # The hottest reads, done on the event loop (``relais.core.loop_reads``); None on an
        # in-memory SQLite database.
        self.loop_reader = loop_reader_for(self.engine)
        # PostgreSQL: connections of the event loop's own for the group commit of audit events
        # (``api.audit_batches.AuditBatches``): no thread hand-off, no ORM session.
        self.loop_writes = LoopConnections(self.engine, writes=True) if self.dialect == "postgresql" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def sqlite_connection(self) -> Iterator[sqlite3.Connection]:
        """SQLite's pooled connection (the one writer) as ``sqlite3``'s own, for a unit of work
        the driver runs alone, without a session or SQLAlchemy's transaction: the caller begins
        and ends its transaction. Taken from the pool as a session takes it (same wait, same
        ``PoolTimeout``), given back on exit."""
        pooled = self.engine.raw_connection()
        try:
            yield cast(sqlite3.Connection, pooled.driver_connection)
        finally:
            pooled.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self.session() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        if self.loop_reader is not None:
            self.loop_reader.close()
        if self.loop_writes is not None:
            self.loop_writes.close()
        self.engine.dispose()
