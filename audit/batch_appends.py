"""The group commit's appends, run by the database driver alone: the rows, hashes, lock and
sequence of ``audit.journal.append_events``, in a transaction of their own, without an ORM
session or SQLAlchemy's transaction.

The request pipeline commits the events of calls that wrote nothing else in batches
(``api.audit_batches.AuditBatches``). Through a session, a batch's bookkeeping cost more CPU than its
eight events' rows and hashes:

- **PostgreSQL**: on the event loop, on one of its own asyncpg connections
  (``Database.loop_writes``, ``relais.core.loop_connections``): no thread hand-off, no pooled
  connection's ping, asyncpg's round trips instead of psycopg's. 1.5 ms of CPU per batch of 8
  in a worker thread through a session, 0.8 ms here. Statements compiled for asyncpg by
  SQLAlchemy's own asyncpg dialect. The transaction opens when the batch does (``OpenBatch``)
  and takes each event as it comes: only the last events' insert and the commit are left to
  wait for once the batch closes.
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


class OpenBatch:
    """PostgreSQL: a batch's transaction on one of the loop's connections, open while its events
    arrive, so that most of its round trips overlap the calls still being worked on.

    ``begin`` takes the appenders' shared lock; ``append`` inserts the events that came since,
    with ``seq`` drawn under that lock; ``commit`` ends it. On any error nothing is committed
    (the caller closes the connection: the server then rolls the transaction back).

    ``seq`` values left over when it commits are never used by another transaction: drawn under
    this one's hold on the lock, they may be below what a sequencer has taken since (``seq``
    may have gaps, never a late value).
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._seqs: list[int] = []

    async def begin(self) -> None:
        # One round trip for both: a simple query's statements run in order, in this transaction.
        await self._connection.execute(f"BEGIN; {SHARED_LOCK_SQL}")

    async def append(self, events: Sequence[DraftedEvent], *, expected: int = 0) -> list[int]:
        """Insert ``events``; their ``seq``, ascending. ``expected``: how many more events are
        likely to come, whose ``seq`` are drawn now with these (a round trip less later)."""
        short = len(events) - len(self._seqs)
        if short > 0:
            drawn = await self._connection.fetch(_DRAW, short + expected)
            self._seqs += sorted(int(row[0]) for row in drawn)
        seqs, self._seqs = self._seqs[: len(events)], self._seqs[len(events) :]
        rows = event_rows(seqs, events)
        insert = driver_insert(_ASYNCPG, tuple(rows[0]))
        # asyncpg's parameters are positional: ``bind`` gives tuples.
        await self._connection.executemany(insert.sql, [cast(tuple[Any, ...], insert.bind(row)) for row in rows])
        return seqs

    async def commit(self) -> None:
        await self._connection.execute("COMMIT")


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
