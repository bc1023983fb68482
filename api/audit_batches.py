"""Group commit of audit events (``AuditBatches``): the events of calls that leave nothing else
to commit (refusals, failures, calls that only read) are committed together, one flush to disk
for many calls, each caller still answered only once the commit that holds its event is done.
The request pipeline (``api.pipeline``) hands them over; the rows are written by
``audit.batch_appends`` (the driver alone) or, failing that, in a session.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.context import RequestState
from api.services import Services
from audit.batch_appends import OpenBatch, append_events_sqlite
from audit.journal import DraftedEvent, JournalRecorder
from relais.core.loop_connections import Connection
from relais.core.observability import safe_exception_fields
from relais.core.ratelimit import ConcurrencyGate, Overloaded

log = structlog.get_logger("relais.request")

# Group commit (``AuditBatches._awaited``): how long a batch waits, at most, for connections
# answered within the window to send their next call.
COMMIT_DELAY_SECONDS = 0.002
REJOIN_WINDOW_SECONDS = 0.005


_YOUR_TURN = object()


@dataclass
class _Waiter:
    state: RequestState
    status: int
    done: anyio.Event
    connection: Any
    # True (committed), False (failed), None (no slot in time), or _YOUR_TURN to flush.
    outcome: object = None


class AuditBatches:
    """Group commit of the audit events of calls that leave nothing else to commit: refusals,
    failures and calls that only read.

    Every such event is committed before its response leaves, as every other: the caller
    waits for the commit that holds it. One caller at a time writes the events queued so
    far in one transaction, within one database slot, then hands the turn to the next
    queued caller, so no caller ever writes more than one batch for the others.
    """

    MAX_BATCH = 200

    def __init__(self) -> None:
        self._pending: list[_Waiter] = []
        self._busy = False
        # The client connections whose audited call was answered lately (monotonic time):
        # their next call may be on its way, and a batch may wait for it (``_awaited``).
        self._answered: dict[Any, float] = {}
        # Those of them whose last call came within COMMIT_DELAY_SECONDS of the answer before
        # it: the only ones worth waiting for.
        self._prompt: set[Any] = set()
        self._joined: anyio.Event | None = None

    def answered(self, connection: Any) -> None:
        """A call of this connection (``scope["client"]``) was answered (None: not audited)."""
        if connection is not None:
            self._answered[connection] = time.monotonic()

    def arrived(self, connection: Any) -> None:
        """A call of this connection arrived (None: not audited): was it prompt after the last
        answer? A client that sends its next call at once (a busy editor's worker, wrk) is;
        one that sends calls now and then, whatever its connection, is not, and a batch that
        waited for it would only delay every call in it (by the whole COMMIT_DELAY_SECONDS)."""
        if connection is None:
            return
        answered_at = self._answered.get(connection)
        if answered_at is not None and time.monotonic() - answered_at <= COMMIT_DELAY_SECONDS:
            self._prompt.add(connection)
        else:
            self._prompt.discard(connection)

    async def write(
        self, gate: ConcurrencyGate, state: RequestState, status: int, *, connection: Any = None
    ) -> bool | None:
        """Whether the event is committed; raises Overloaded when no slot freed in time."""
        # Shielded: a caller that went away must still hand the turn on (bounded by the
        # gate's wait and one batch's commit).
        with anyio.CancelScope(shield=True):
            outcome = await self._write(gate, state, status, connection)
        return outcome

    async def _write(self, gate: ConcurrencyGate, state: RequestState, status: int, connection: Any) -> bool | None:
        waiter = _Waiter(state, status, anyio.Event(), connection)
        self._pending.append(waiter)
        if self._joined is not None:
            self._joined.set()
        if self._busy:
            await waiter.done.wait()
            if waiter.outcome is not _YOUR_TURN:
                return self._result(waiter)
        self._busy = True
        batch, outcome = await self._flush(gate, state.services)
        for each in batch:
            each.outcome = outcome
            each.done.set()
        if self._pending:
            self._pending[0].outcome = _YOUR_TURN
            self._pending[0].done.set()
        else:
            self._busy = False
        return self._result(waiter)

    async def _flush(self, gate: ConcurrencyGate, services: Services) -> tuple[list[_Waiter], bool | None]:
        """Gather and commit one batch, the first queued caller's: its callers, taken off the
        queue, and its outcome. A failed batch takes every caller queued (as many as a batch
        holds), whether its event was sent yet or not: none of them is committed."""
        committed = 0
        outcome: bool | None
        # Who to wait for, and until when, as of now: opening the transaction (a connection to
        # open, a slot to wait for) does not move the batch's deadline.
        awaited, deadline = self._awaited()
        try:
            await gate.acquire()
        except Overloaded:
            outcome = None
        else:
            try:
                streamed = await self._commit_on_loop(services, awaited, deadline)
                if streamed is None:
                    await self._gather(awaited, deadline)
                    committed = min(len(self._pending), self.MAX_BATCH)
                    await anyio.to_thread.run_sync(_commit_batch, self._pending[:committed])
                else:
                    committed = streamed
                outcome = True
                services.metrics.audit_batch_size.observe(committed)
            except PoolTimeout:
                log.warning("audit_overloaded", operation="batch")
                outcome = None
            except Exception as exc:
                log.error("audit_write_failed", operation="batch", **safe_exception_fields(exc))
                outcome = False
            finally:
                gate.release()
        if not outcome:
            committed = min(len(self._pending), self.MAX_BATCH)
        batch, self._pending = self._pending[:committed], self._pending[committed:]
        return batch, outcome

    async def _commit_on_loop(self, services: Services, awaited: set[Any], deadline: float) -> int | None:
        """PostgreSQL: the batch gathered and committed on one of the loop's connections
        (``audit.batch_appends.OpenBatch``), its transaction open from the start: each caller's
        event is inserted as it comes, while the others are still being worked on, and only the
        last ones and the commit are left to wait for. Returns how many of the queued callers
        it committed (the first ones); None when there is no such connection to be had
        (SQLite, a recorder other than the journal, or PostgreSQL failed a moment ago), the
        batch then goes to ``_commit_batch``. Raises when the commit failed: nothing of it was
        committed, nor is it tried again."""
        connections = services.database.loop_writes
        if connections is None or not isinstance(services.audit_recorder, JournalRecorder):
            return None

        async def gather_and_commit(connection: Connection) -> int:
            batch = OpenBatch(connection)
            appended = 0

            async def append_arrived(expected: int) -> None:
                nonlocal appended
                arrived = self._pending[appended : self.MAX_BATCH]
                if arrived:
                    room = self.MAX_BATCH - appended - len(arrived)
                    await batch.append(_drafted(arrived), expected=min(expected, room))
                    appended += len(arrived)

            await batch.begin()
            await self._gather(awaited, deadline, append_arrived)
            await append_arrived(0)
            await batch.commit()
            return appended

        return await connections.run(gather_and_commit)

    def _awaited(self) -> tuple[set[Any], float]:
        """Group commit, as PostgreSQL's ``commit_delay`` with ``commit_siblings``: a batch
        waits, at most COMMIT_DELAY_SECONDS, for the connections answered a moment ago to send
        their next call and join it, rather than commit without them and have them start the
        next one. A batch's transaction, thread hand-off and flush cost about a millisecond of
        CPU whatever its size (0.9 ms for 8 events on SQLite): with 8 busy clients, batches
        went from 4.5 to 8 events and the CPU per search from 0.68 to 0.56 ms on SQLite, 0.96
        to 0.78 ms on PostgreSQL (bench/run.py --wrk; on PostgreSQL the other clients' answers
        left up to 5 ms before: hence the window). A connection alone waits for nobody, nor
        does anyone wait for a client that was not prompt last time (``arrived``): its next
        call would seldom come within the delay, and every call of the batch would wait the
        whole delay for it.

        Returns the connections to wait for and the deadline, for ``_gather``."""
        now = time.monotonic()
        self._answered = {key: at for key, at in self._answered.items() if now - at < REJOIN_WINDOW_SECONDS}
        # Known only while answered lately (a client that comes back promptly is marked prompt
        # again at once): the set stays as small as the clients busy at this moment.
        self._prompt.intersection_update(self._answered)
        awaited = self._prompt.difference(waiter.connection for waiter in self._pending)
        return awaited, now + COMMIT_DELAY_SECONDS

    async def _gather(
        self, awaited: set[Any], deadline: float, arrived: Callable[[int], Awaitable[None]] | None = None
    ) -> None:
        """Wait until the ``awaited`` connections have joined, or the deadline (``_awaited``).
        ``arrived``, when given, is called with the callers queued so far before each wait,
        with the number of connections still awaited: it writes their events meanwhile."""
        while True:
            if arrived is not None:
                await arrived(len(awaited))
                awaited.difference_update(waiter.connection for waiter in self._pending)
            remaining = deadline - time.monotonic()
            if not awaited or len(self._pending) >= self.MAX_BATCH or remaining <= 0:
                break
            self._joined = anyio.Event()
            with anyio.move_on_after(remaining):
                await self._joined.wait()
            awaited.difference_update(waiter.connection for waiter in self._pending)
        self._joined = None
        await anyio.lowlevel.checkpoint()  # the calls whose audit is due now join too

    @staticmethod
    def _result(waiter: _Waiter) -> bool | None:
        if waiter.outcome is None:
            raise Overloaded()
        return bool(waiter.outcome)


def _drafted(batch: list[_Waiter]) -> list[DraftedEvent]:
    return [
        DraftedEvent(each.state.audit, each.state.request_id, each.status, each.state.services.clock())
        for each in batch
    ]


def _commit_batch(batch: list[_Waiter]) -> None:
    first = batch[0].state
    recorder = first.services.audit_recorder
    database = first.services.database
    if database.dialect == "sqlite" and isinstance(recorder, JournalRecorder):
        with database.sqlite_connection() as connection:
            append_events_sqlite(connection, database.engine.dialect, _drafted(batch))
        return
    with database.transaction() as session:
        if isinstance(recorder, JournalRecorder):
            # The whole batch in one statement, its sequence numbers drawn in one query.
            recorder.record_many(session, _drafted(batch))
            return
        for waiter in batch:
            waiter.state.services.audit_recorder.record(
                session,
                waiter.state.audit,
                request_id=waiter.state.request_id,
                http_status=waiter.status,
                occurred_at=waiter.state.services.clock(),
            )
