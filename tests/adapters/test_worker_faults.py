"""Delivery under faults: every event reaches the editor once (by its id) or is dead and visible."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from adapters.outbound import deliveries, registry
from adapters.outbound.models import PAUSED, Connector, DeliveryAttempt
from relais.core.db import Database
from relais.core.outbox import DEAD, DELIVERED, FAILED, OutboxMessage
from tests.adapters.outbound_support import (
    Clock,
    add_connector,
    drain,
    editor,
    keyset,
    messages,
    publish,
    settings,
    waiting,
    worker,
)


def test_failures_429_and_lost_acknowledgements_end_with_every_event_received_once(
    database: Database, tmp_path: Path
) -> None:
    keys, clock = keyset(), Clock()
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url))
        ids = publish(database, 8, now=clock.now)
        fake.switches.fail = 3
        fake.switches.rate_limit = 2
        fake.switches.lose_ack = 2

        drain(worker(database, keys, settings(tmp_path), clock), clock)

        assert sorted(fake.state.ids()) == sorted(ids)
        assert len(fake.state.ids()) == len(set(fake.state.ids()))
        # The two lost acknowledgements made Relais send those events again: dropped by id.
        assert fake.state.duplicates == 2
    assert {m.status for m in messages(database)} == {DELIVERED}
    with database.session() as session:
        outcomes = [a.outcome for a in session.exec(select(DeliveryAttempt))]
    assert outcomes.count(DELIVERED) == 8 and outcomes.count(FAILED) == 7


def test_retry_after_is_honoured(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url))
        publish(database, 1, now=clock.now)
        fake.switches.rate_limit = 1
        fake.switches.retry_after = 900
        runner = worker(database, keys, settings(tmp_path, connector_backoff_base_seconds=1.0), clock)

        runner.run_until_idle()
        (message,) = messages(database)
        assert message.status == FAILED and message.last_error == "réponse HTTP 429"
        assert message.next_attempt_at >= clock.now + timedelta(seconds=900)

        clock.advance(seconds=600)
        assert runner.run_until_idle() == 0  # not before Retry-After
        clock.advance(seconds=301)
        runner.run_until_idle()
        assert fake.state.ids() == [message.payload["id"]]


def test_a_slow_editor_times_out_then_gets_the_event_once(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url, timeout_seconds=0.2))
        ids = publish(database, 2, now=clock.now)
        fake.switches.delay = 0.6
        runner = worker(database, keys, settings(tmp_path), clock)
        runner.run_until_idle()
        assert {m.last_error for m in messages(database)} == {"délai de réponse dépassé"}

        fake.switches.delay = 0
        drain(runner, clock)
        # The slow editor did process the first calls after Relais gave up: the retries are
        # duplicates it recognises, and each event was processed once.
        assert sorted(fake.state.ids()) == sorted(ids)
        assert {m.status for m in messages(database)} == {DELIVERED}


def test_editor_gone_mid_run_and_relais_restarted_lose_nothing(database_url: str, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    first = Database(database_url)
    fake = editor({}).__enter__()
    port = fake.server.server_address[1]
    try:
        fake.state.keys.update(add_connector(first, keys, fake.url, timeout_seconds=1.0))
        ids = publish(first, 6, now=clock.now)
        config = settings(tmp_path, connector_batch_size=2)
        runner = worker(first, keys, config, clock)
        runner.run_once()  # two delivered
        state = fake.state
    finally:
        fake.__exit__(None, None, None)  # the editor goes away
    # One more batch fails (connection refused), another is claimed and the process dies
    # before delivering it: its lease keeps it for the dead worker until it expires.
    runner.run_once()
    orphaned = runner.claim()
    assert len(orphaned) == 2
    first.dispose()

    # Relais restarts: a new process, a new database connection; the editor is back.
    second = Database(database_url)
    try:
        with editor({}, port=port, state=state):
            restarted = worker(second, keys, config, clock, seed=2)
            restarted.run_until_idle()
            claimed_by_the_dead = [m for m in messages(second) if m.id in {c.message_id for c in orphaned}]
            assert {m.status for m in claimed_by_the_dead} != {DELIVERED}  # still leased
            clock.advance(seconds=config.connector_lease_seconds + 1)
            drain(restarted, clock)
            assert sorted(state.ids()) == sorted(ids)
            assert len(state.ids()) == len(set(state.ids()))
        assert {m.status for m in messages(second)} == {DELIVERED}
    finally:
        second.dispose()


def test_dead_after_the_configured_attempts_then_visible_and_replayable(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url, max_attempts=3))
        (event_id,) = publish(database, 1, now=clock.now)
        fake.switches.fail = 100
        runner = worker(database, keys, settings(tmp_path), clock)
        drain(runner, clock)

        (message,) = messages(database)
        assert (message.status, message.attempts, message.last_error) == (DEAD, 3, "réponse HTTP 500")
        assert fake.state.ids() == []
        with database.session() as session:
            connector = session.exec(select(Connector)).one()
            assert deliveries.counts(session, connector)["ABANDONNE"] == 1
            found = deliveries.message(session, connector, event_id)
            assert found is not None and len(deliveries.attempts(session, found)) == 3
            deliveries.replay(session, found, clock.now)
            session.commit()

        fake.switches.fail = 0
        runner.run_until_idle()
        assert fake.state.ids() == [event_id]
        assert [m.status for m in messages(database)] == [DELIVERED]


def test_a_connector_that_keeps_failing_is_paused_and_its_rgc_notified(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url))
        ids = publish(database, 4, now=clock.now)
        fake.switches.fail = 3
        runner = worker(database, keys, settings(tmp_path, connector_pause_after_failures=3), clock)
        runner.run_until_idle()
        clock.advance(hours=12)
        assert runner.run_until_idle() == 0  # paused: nothing is claimed, nothing is lost

        with database.session() as session:
            connector = session.exec(select(Connector)).one()
            assert connector.state == PAUSED
            (notice,) = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == "rgc:CD33")).all()
            assert notice.topic == "connecteurs.connecteur.suspendu"
            assert notice.payload["connecteur"] == "solis-cd33"
            assert registry.resume(session, connector, clock.now) == 4
            session.commit()
        runner.run_until_idle()
        assert sorted(fake.state.ids()) == sorted(ids)
    # No notification channel: the RGC notice is in the RGCs' console inbox, not pending forever.
    assert waiting(database) == 0
    with database.session() as session:
        (notice,) = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == "rgc:CD33")).all()
    assert notice.status == "skipped"


def test_a_worker_that_outlived_its_lease_writes_nothing(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url))
        (event_id,) = publish(database, 1, now=clock.now)
        config = settings(tmp_path)
        slow, other = worker(database, keys, config, clock), worker(database, keys, config, clock, seed=2)
        (late,) = slow.claim()
        clock.advance(seconds=config.connector_lease_seconds + 1)
        assert other.run_until_idle() == 1
        # The first worker wakes up and delivers too: the editor drops the duplicate by its id,
        # and the stale outcome is not recorded over the current holder's.
        outcome = slow.deliver(late)
        assert outcome is not None and outcome.delivered
        assert fake.state.ids() == [event_id] and fake.state.duplicates == 1
    (message,) = messages(database)
    assert (message.status, message.attempts) == (DELIVERED, 2)
    with database.session() as session:
        assert [a.attempt for a in session.exec(select(DeliveryAttempt))] == [2]
