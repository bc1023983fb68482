"""Group commit of audit events (``api.pipeline.AuditBatches``): a batch waits a moment for the
connections answered just before to send their next call, when they came back promptly last
time, so busy clients share one commit; a connection alone waits for nobody, nor does a batch
wait for a client that calls now and then; every event is committed before its caller goes on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlmodel import func, select

from api import pipeline
from api.context import RequestState
from api.pipeline import REJOIN_WINDOW_SECONDS, AuditBatches
from audit.models import AuditEvent
from relais.core.auditing import AuditDraft
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
    monkeypatch.setattr(pipeline, "COMMIT_DELAY_SECONDS", DELAY)


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
