"""The group commit's appends, run by the database driver alone: the rows, hashes, lock and
sequence of ``audit.journal.append_events``, in a transaction of their own, without an ORM
session or SQLAlchemy's transaction.

The request pipeline commits the events of calls that wrote nothing else in batches
(``api.pipeline.AuditBatches``). Through a session, a batch's bookkeeping cost more CPU than its
eight events' rows and hashes:

- **PostgreSQL**: on the event loop, on one of its own asyncpg connections
  (``Database.loop_writes``, ``relais.core.loop_connections``): no thread hand-off, no pooled
  connection's ping, asyncpg's round trips instead of psycopg's. 1.5 ms of CPU per batch of 8
  in a worker thread through a session, 0.8 ms here. Statements compiled for asyncpg by
  SQLAlchemy's own asyncpg dialect.
- **SQLite**: still in a worker thread (its flush to disk would hold the loop), on the pooled
  connection (the one writer) as ``sqlite3``'s own (``Database.sqlite_connection``): 1.0 ms of
  CPU per batch of 8 through a session, 0.7 ms here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from audit.journal import LAST_SEQ, SHARED_LOCK_SQL, DraftedEvent, draw_sql, driver_insert, event_rows
from relais.core.loop_connections import Connection

_ASYNCPG = asyncpg_dialect()
# The count as a parameter: one statement prepared whatever the batch's size.
_DRAW = draw_sql("$1::integer")
_LAST_SEQ_SQLITE = str(LAST_SEQ.compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}))


async def append_events_on_loop(connection: Connection, events: Sequence[DraftedEvent]) -> list[int]:
    """PostgreSQL: the batch committed on return, the lock taken before the ``seq`` are drawn.
    On any error nothing is committed (the caller closes the connection: the server then rolls
    the transaction back)."""
    # One round trip for both: a simple query's statements run in order, in this transaction.
    await connection.execute(f"BEGIN; {SHARED_LOCK_SQL}")
    seqs = sorted(int(row[0]) for row in await connection.fetch(_DRAW, len(events)))
    rows = event_rows(seqs, events)
    insert = driver_insert(_ASYNCPG, tuple(rows[0]))
    # asyncpg's parameters are positional: ``bind`` gives tuples.
    await connection.executemany(insert.sql, [cast(tuple[Any, ...], insert.bind(row)) for row in rows])
    await connection.execute("COMMIT")
    return seqs


def append_events_sqlite(connection: sqlite3.Connection, dialect: Any, events: Sequence[DraftedEvent]) -> list[int]:
    """SQLite: the batch committed on return, rolled back on any error; its ``seq`` follow the
    last one, read once SQLite's write lock is taken (``BEGIN IMMEDIATE``)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        last = int(connection.execute(_LAST_SEQ_SQLITE).fetchone()[0])
        seqs = list(range(last + 1, last + 1 + len(events)))
        rows = event_rows(seqs, events)
        insert = driver_insert(dialect, tuple(rows[0]))
        connection.executemany(insert.sql, [cast(tuple[Any, ...], insert.bind(row)) for row in rows])
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return seqs
