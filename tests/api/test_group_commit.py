"""Group commit of audit events (``api.audit_batches.AuditBatches``): a batch waits a moment for the
connections answered just before to send their next call, when they came back promptly last
time, so busy clients share one commit; a connection alone waits for nobody, nor does a batch
wait for a client that calls now and then; every event is committed before its caller goes on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from api import audit_batches
from api.audit_batches import REJOIN_WINDOW_SECONDS, AuditBatches
from api.context import RequestState
from audit.models import AuditEvent
from relais.core.auditing import AuditDraft
from relais.core.loop_connections import WRITES_APPLICATION_NAME
from tests.support.hub import Hub


def _state(hub: Hub, name: str) -> RequestState:
    return RequestState(
        request_id=name,
        services=hub.services,
        audit=AuditDraft(channel="partenaire", operation="rechercherUsagerParNumeroFranceTravail", client_id=name),
    )


def _events(hub: Hub) -> int:
    with hub.services.database.session() as session:
        return int(session.exec(select(func.count()).select_from(AuditEvent)).one())


# Long enough to tell "waited" from "did not wait" whatever the commit's own duration.
DELAY = 0.5


def _answered_busy(batches: AuditBatches, connection: tuple[str, int]) -> None:
    """A client that sent its call as soon as the previous one was answered (as a busy
    editor's worker does), answered again just now: its next call is coming."""
    batches.answered(connection)
    batches.arrived(connection)
    batches.answered(connection)


@pytest.fixture(autouse=True)
def _long_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_batches, "COMMIT_DELAY_SECONDS", DELAY)


def test_a_batch_waits_for_the_connection_just_answered_and_commits_both_events_once(hub: Hub) -> None:
    batches = AuditBatches()
    gate = hub.services.database.gate
    before_events, before = _events(hub), hub.audit_batches()

    async def scenario() -> tuple[Any, Any]:
        _answered_busy(batches, ("127.0.0.1", 1001))
        first = asyncio.create_task(batches.write(gate, _state(hub, "b"), 200, connection=("127.0.0.1", 1002)))
        await asyncio.sleep(DELAY / 5)
        assert not first.done()  # waiting for 1001, not committed alone
        second = await batches.write(gate, _state(hub, "a"), 200, connection=("127.0.0.1", 1001))
        return await first, second

    assert asyncio.run(scenario()) == (True, True)
    after = hub.audit_batches()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 2)  # one commit, two events
    assert _events(hub) == before_events + 2


def _timed_write(hub: Hub, batches: AuditBatches, name: str, port: int) -> tuple[bool | None, float]:
    """One call's event written alone through ``batches``: (committed, seconds it took)."""

    async def write() -> tuple[bool | None, float]:
        started = time.monotonic()
        committed = await batches.write(
            hub.services.database.gate, _state(hub, name), 200, connection=("127.0.0.1", port)
        )
        return committed, time.monotonic() - started

    return asyncio.run(write())


def test_a_connection_alone_is_committed_without_waiting(hub: Hub) -> None:
    batches = AuditBatches()
    before = hub.audit_batches()
    # Its own previous answer does not make it wait for itself.
    batches.answered(("127.0.0.1", 1001))
    committed, waited = _timed_write(hub, batches, "a", 1001)
    assert committed is True
    assert waited < DELAY / 2
    after = hub.audit_batches()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_connection_that_does_not_come_back_delays_a_batch_by_the_bounded_wait_only(hub: Hub) -> None:
    batches = AuditBatches()
    _answered_busy(batches, ("127.0.0.1", 1001))  # answered, then silent
    committed, waited = _timed_write(hub, batches, "b", 1002)
    assert committed is True
    assert waited >= DELAY  # it did wait for 1001...
    # ...and connections answered longer ago than the window are not waited for at all.
    time.sleep(REJOIN_WINDOW_SECONDS * 2)
    before = hub.audit_batches()
    committed, waited = _timed_write(hub, batches, "c", 1003)
    assert committed is True
    assert waited < DELAY / 2
    after = hub.audit_batches()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_client_that_calls_now_and_then_is_not_waited_for(hub: Hub) -> None:
    batches = AuditBatches()
    # Its last call came a while after the answer before it (longer than the delay): waiting
    # for its next one would only hold every event of the batch back.
    batches.answered(("127.0.0.1", 1001))
    time.sleep(DELAY * 1.2)
    batches.arrived(("127.0.0.1", 1001))
    batches.answered(("127.0.0.1", 1001))
    committed, waited = _timed_write(hub, batches, "b", 1002)
    assert committed is True
    assert waited < DELAY / 2
    # Once it comes back promptly, it is waited for again.
    _answered_busy(batches, ("127.0.0.1", 1001))
    committed, waited = _timed_write(hub, batches, "c", 1003)
    assert committed is True
    assert waited >= DELAY


def _events_in_open_batches(hub: Hub) -> int:
    """Rows inserted by a batch's transaction still open on the loop's connections, as
    PostgreSQL counts them (``n_tup_ins`` of the transactions in progress is not visible: the
    open transactions holding the journal's shared lock are)."""
    query = text(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.mode = 'ShareLock' AND l.granted"
        " AND a.datname = current_database() AND a.application_name = :name AND a.state = 'idle in transaction'"
    )
    with hub.services.database.session() as session:
        return int(session.execute(query, {"name": WRITES_APPLICATION_NAME}).scalar_one())


def test_on_postgresql_a_batch_writes_as_its_events_come_and_a_failure_commits_none_of_them(hub: Hub) -> None:
    """The batch's transaction opens with the batch and takes the first event while the batch
    waits for the others; when a later one fails, the whole batch fails: the event sent first
    is not committed either, and every caller of the batch hears so."""
    if hub.services.database.loop_writes is None:
        pytest.skip("on SQLite a batch is written once gathered, in a worker thread")
    batches = AuditBatches()
    gate = hub.services.database.gate
    before = _events(hub)

    async def scenario() -> tuple[int, Any, Any]:
        _answered_busy(batches, ("127.0.0.1", 1001))
        first = asyncio.create_task(batches.write(gate, _state(hub, "b"), 200, connection=("127.0.0.1", 1002)))
        await asyncio.sleep(DELAY / 5)
        assert not first.done()  # waiting for 1001...
        open_meanwhile = await asyncio.to_thread(_events_in_open_batches, hub)  # ...in its open transaction
        # A status no column can hold: this event is refused.
        second = await batches.write(gate, _state(hub, "a"), 2**31, connection=("127.0.0.1", 1001))
        return open_meanwhile, await first, second

    open_meanwhile, first, second = asyncio.run(scenario())
    assert open_meanwhile == 1
    assert (first, second) == (False, False)
    assert _events(hub) == before
    # The next batch is written and committed as usual.
    assert _timed_write(hub, batches, "c", 1003)[0] is True
    assert _events(hub) == before + 1
