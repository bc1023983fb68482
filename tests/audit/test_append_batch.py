"""Group commit of audit events (``append_events``): a batch writes the rows and leaf hashes
that one-by-one appends would, in the order given, all or nothing, and on PostgreSQL
concurrent batches share the sequence and the sequencer's lock protocol without losing,
skipping or repeating an event."""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from audit.batch_appends import OpenBatch, append_events_sqlite
from audit.journal import (
    SEQUENCER_LOCK_KEY,
    DraftedEvent,
    JournalRecorder,
    append_event,
    append_events,
    event_content,
    event_leaf_hash,
    sequence_pending,
)
from audit.verify import VerifyReport, verify_database
from relais.core.auditing import AuditDraft
from relais.core.db import Database
from relais.core.loop_connections import Connection, LoopConnections
from tests.audit.journal_fixtures import T0, checkpoint, events_by_seq, public_keys, settings_for

LEAF_SEQS = "SELECT l.leaf_index, e.seq FROM audit_leaf l JOIN audit_event e ON e.id = l.event_id ORDER BY 1"


def _drafts(count: int, *, tag: str = "lot") -> list[DraftedEvent]:
    """Events as calls leave them: allowed, refused and failed; agents, usagers, free text to
    escape, structured details, and fields left empty."""
    events = []
    for index in range(count):
        status = (200, 403, 500, 201)[index % 4]
        draft = AuditDraft(
            channel=("partner-api", "admin-api", "oauth")[index % 3],
            operation=f"{tag}-{index}",
            client_id="cd33" if index % 2 else None,
            organisation="CD33",
            agent_nom="Martin\r\nfaux=événement" if index == 1 else "Martin",
            agent_prenom="Claire",
            agent_identifiant=f"AGT-{index:04d}",
            usager_id=str(1000 + index),
            reason="refus\x1b[31m" if status == 403 else None,
            agent_id=index,
            habilitation_id=f"H{index}",
            scopes="api_x x",
            details={"n": index, "note\n": ["a\tb"]} if index % 5 == 0 else None,
        )
        events.append(
            DraftedEvent(draft, f"{tag}-{index}-{uuid.uuid4().hex[:8]}", status, T0 + timedelta(seconds=index))
        )
    return events


async def append_events_on_loop(connection: Connection, events: Sequence[DraftedEvent]) -> list[int]:
    """A whole batch on one of the loop's connections, in one ``OpenBatch``."""
    batch = OpenBatch(connection)
    await batch.begin()
    seqs = await batch.append(events)
    await batch.commit()
    return seqs


def _verify(database: Database, tmp_path: Path) -> VerifyReport:
    settings = settings_for(database, tmp_path)
    checkpoint(database, settings, force=True)
    with database.session() as session:
        return verify_database(session, public_keys(settings), workers=1)


def _rows(database: Database) -> list[dict[str, Any]]:
    with database.session() as session:
        return [
            {**event.model_dump(), "content": event_content(event), "leaf": event_leaf_hash(event).hex()}
            for event in events_by_seq(session)
        ]


def test_a_batch_verifies_and_keeps_the_order_given(database: Database, tmp_path: Path) -> None:
    drafts = _drafts(13)
    with database.transaction() as session:
        seqs = append_events(session, drafts)
    # A fresh journal: 1..13, gap-free, in the order given.
    assert seqs == list(range(1, 14))
    rows = _rows(database)
    assert [row["request_id"] for row in rows] == [each.request_id for each in drafts]
    assert [row["seq"] for row in rows] == seqs
    # The hash stored at append is the leaf hash of what the row holds.
    assert [row["hash"] for row in rows] == [row["leaf"] for row in rows]
    # Free text escaped as a single append escapes it.
    assert rows[1]["agent_nom"] == "Martin\\u000d\\u000afaux=événement"
    assert rows[0]["details"] == {"n": 0, "note\\u000a": ["a\\u0009b"]}
    assert [row["decision"] for row in rows[:4]] == ["allowed", "denied", "error", "allowed"]
    report = _verify(database, tmp_path)
    assert report.ok, report.problems
    assert (report.leaves, report.events) == (13, 13)
    with database.session() as session:
        leaves = session.execute(
            text("SELECT e.request_id FROM audit_leaf l JOIN audit_event e ON e.id = l.event_id ORDER BY l.leaf_index")
        ).scalars()
        assert list(leaves) == [each.request_id for each in drafts]


def test_a_batch_writes_what_single_appends_write(database: Database) -> None:
    """Same drafts, through ``append_event`` one by one, through the recorder other domains
    use, and as a batch: the rows agree field by field but for their seq, and each leaf hash
    is what the other paths give for that seq."""
    drafts = _drafts(6)
    with database.transaction() as session:
        for each in drafts:
            append_event(
                session,
                each.draft,
                request_id=each.request_id,
                http_status=each.http_status,
                occurred_at=each.occurred_at,
            )
    with database.transaction() as session:
        for each in drafts:
            JournalRecorder().record(
                session,
                each.draft,
                request_id=each.request_id,
                http_status=each.http_status,
                occurred_at=each.occurred_at,
            )
    with database.transaction() as session:
        append_events(session, drafts)
    rows = _rows(database)
    single, recorded, batch = rows[:6], rows[6:12], rows[12:]
    for one, *others in zip(single, recorded, batch, strict=True):
        for other in others:
            assert {k: v for k, v in one["content"].items() if k != "seq"} == {
                k: v for k, v in other["content"].items() if k != "seq"
            }
            assert event_leaf_hash({**one["content"], "seq": other["seq"]}).hex() == other["hash"]
            assert other["prev_hash"] == one["prev_hash"] == ""
            assert (other["details"] is None) == (one["details"] is None)


def test_a_batch_run_by_the_driver_writes_what_a_session_batch_writes(database: Database, tmp_path: Path) -> None:
    """The group commit's way (``audit.batch_appends``): on PostgreSQL on the event loop
    through asyncpg, on SQLite by ``sqlite3`` alone on the pooled connection. The same rows and
    leaf hashes as ``append_events`` in a session, and the journal verifies."""
    with database.transaction() as session:
        append_events(session, _drafts(6))
    # The same events but for their names (the verifier rejects a copy of an earlier event).
    drafts = _drafts(6, tag="pilote")
    if database.dialect == "sqlite":
        with database.sqlite_connection() as connection:
            seqs = append_events_sqlite(connection, database.engine.dialect, drafts)
    else:
        connections = LoopConnections(database.engine, writes=True)

        async def on_loop() -> list[int] | None:
            return await connections.run(lambda connection: append_events_on_loop(connection, drafts))

        try:
            seqs = asyncio.run(on_loop())
        finally:
            connections.close()
    assert seqs == list(range(7, 13))
    rows = _rows(database)
    named = ("id", "seq", "operation", "request_id", "content", "leaf", "hash")
    for session_row, driver_row, draft in zip(rows[:6], rows[6:], drafts, strict=True):
        assert {k: v for k, v in session_row.items() if k not in named} == {
            k: v for k, v in driver_row.items() if k not in named
        }
        assert (driver_row["operation"], driver_row["request_id"]) == (draft.draft.operation, draft.request_id)
        assert driver_row["hash"] == driver_row["leaf"]
        names = {"operation": draft.draft.operation, "request_id": draft.request_id, "seq": driver_row["seq"]}
        assert event_leaf_hash({**session_row["content"], **names}).hex() == driver_row["hash"]
    assert rows[6]["details"] == {"n": 0, "note\\u000a": ["a\\u0009b"]}
    report = _verify(database, tmp_path)
    assert report.ok, report.problems
    assert (report.leaves, report.events) == (12, 12)


def test_single_and_batch_appends_in_one_transaction_keep_call_order(database: Database, tmp_path: Path) -> None:
    first, middle, last = _drafts(1, tag="a"), _drafts(4, tag="b"), _drafts(1, tag="c")
    with database.transaction() as session:
        one = first[0]
        append_event(
            session, one.draft, request_id=one.request_id, http_status=one.http_status, occurred_at=one.occurred_at
        )
        JournalRecorder().record_many(session, middle)
        one = last[0]
        append_event(
            session, one.draft, request_id=one.request_id, http_status=one.http_status, occurred_at=one.occurred_at
        )
    assert [row["operation"] for row in _rows(database)] == ["a-0", "b-0", "b-1", "b-2", "b-3", "c-0"]
    report = _verify(database, tmp_path)
    assert report.ok, report.problems
    assert report.events == 6


def test_a_failure_mid_batch_writes_nothing(database: Database, tmp_path: Path) -> None:
    with database.transaction() as session:
        append_events(session, _drafts(3, tag="avant"))
    drafts = _drafts(5, tag="echec")
    # The third event cannot be stored (no channel): the database refuses that row.
    broken = drafts[2]
    drafts[2] = DraftedEvent(
        AuditDraft(channel=None, operation="casse"),  # type: ignore[arg-type]
        broken.request_id,
        broken.http_status,
        broken.occurred_at,
    )
    with pytest.raises(IntegrityError), database.transaction() as session:
        # The call's own work in the same transaction goes with it.
        append_event(
            session, AuditDraft(channel="cli", operation="travail"), request_id="w", http_status=200, occurred_at=T0
        )
        append_events(session, drafts)
    assert [row["operation"] for row in _rows(database)] == ["avant-0", "avant-1", "avant-2"]
    with database.transaction() as session:
        append_events(session, _drafts(2, tag="apres"))
    report = _verify(database, tmp_path)
    assert report.ok, report.problems
    assert (report.leaves, report.events) == (5, 5)


def test_an_empty_batch_writes_nothing(database: Database) -> None:
    with database.transaction() as session:
        assert append_events(session, []) == []
    assert _rows(database) == []


def _postgresql(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("concurrent appenders are PostgreSQL's (SQLite serialises writers)")


def _advisory_locks(probe: Database) -> list[tuple[str, bool]]:
    with probe.session() as session:
        # The journal's lock only, in this database: other tests' databases and leader locks
        # (periodic jobs) may hold advisory locks of their own meanwhile.
        rows = session.execute(
            text(
                "SELECT mode, granted FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = :high AND objid = :low"
            ),
            {"high": SEQUENCER_LOCK_KEY >> 32, "low": SEQUENCER_LOCK_KEY & 0xFFFFFFFF},
        ).all()
    return [(str(mode), bool(granted)) for mode, granted in rows]


def test_a_batch_holds_the_shared_lock_until_it_commits(database: Database) -> None:
    """The sequencer waits for a batch in flight, then sequences all of it."""
    _postgresql(database)
    probe = Database(database.url)
    try:
        session = database.session()
        append_events(session, _drafts(4, tag="lent"))
        session.flush()
        assert _advisory_locks(probe) == [("ShareLock", True)]
        with database.transaction() as other:
            append_events(other, _drafts(2, tag="rapide"))
        done: list[int] = []
        sequencer = threading.Thread(target=lambda: done.append(sequence_pending(database)))
        sequencer.start()
        deadline = time.monotonic() + 10
        while not done and ("ExclusiveLock", False) not in _advisory_locks(probe):
            assert time.monotonic() < deadline, "the sequencer never waited for the batch in flight"
            time.sleep(0.01)
        assert not done
        session.commit()
        session.close()
        sequencer.join()
        assert done == [6]
        assert _advisory_locks(probe) == []
    finally:
        probe.dispose()
    with database.session() as session:
        rows = session.execute(
            text("SELECT e.operation FROM audit_leaf l JOIN audit_event e ON e.id = l.event_id ORDER BY l.leaf_index")
        ).scalars()
        assert list(rows) == ["lent-0", "lent-1", "lent-2", "lent-3", "rapide-0", "rapide-1"]


def test_an_append_after_a_rolled_back_savepoint_still_holds_the_lock(database: Database) -> None:
    """The lock is taken once per transaction, but a savepoint rolled back may take it away
    with it: the next append takes it again."""
    _postgresql(database)
    probe = Database(database.url)
    try:
        with database.transaction() as session:
            nested = session.begin_nested()
            append_events(session, _drafts(2, tag="annule"))
            nested.rollback()
            append_events(session, _drafts(2, tag="garde"))
            session.flush()
            assert ("ShareLock", True) in _advisory_locks(probe)
    finally:
        probe.dispose()
    assert [row["operation"] for row in _rows(database)] == ["garde-0", "garde-1"]


def test_concurrent_batches_interleave_without_gap_or_duplicate(database: Database, tmp_path: Path) -> None:
    """Eight threads append batches (and single events), and two event loops batches on their
    own connections (``OpenBatch``, the group commit's way, whole or in pieces), while a sequencer
    runs: every event gets one seq, the seqs are 1..N with no gap, each batch keeps its order,
    and the tree takes every event once, in seq order."""
    _postgresql(database)
    threads, rounds, size = 8, 12, 15
    loops, loop_rounds = 2, 10
    failures: list[BaseException] = []
    written: list[list[int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def appender(number: int) -> None:
        rng = random.Random(number)
        try:
            for round_ in range(rounds):
                with database.transaction() as session:
                    if round_ % 4 == 3:
                        drafts = _drafts(1, tag=f"t{number}-r{round_}")
                        one = drafts[0]
                        event = append_event(
                            session,
                            one.draft,
                            request_id=one.request_id,
                            http_status=one.http_status,
                            occurred_at=one.occurred_at,
                        )
                        session.flush()
                        seqs = [event.seq]
                    else:
                        seqs = append_events(session, _drafts(size, tag=f"t{number}-r{round_}"))
                    # Commit a little later: the sequencer must wait for batches in flight.
                    time.sleep(rng.random() / 200)
                with lock:
                    written.append(seqs)
        except BaseException as exc:
            failures.append(exc)

    def loop_appender(number: int) -> None:
        connections = LoopConnections(database.engine, writes=True)

        async def in_pieces(connection: Connection, drafts: list[DraftedEvent]) -> list[int]:
            # As the group commit writes a batch: its first events, with the seq of those
            # expected next drawn at once; a moment later, the rest; then the commit.
            batch = OpenBatch(connection)
            await batch.begin()
            seqs = await batch.append(drafts[:5], expected=len(drafts) - 5)
            await asyncio.sleep(random.Random(number).random() / 200)
            seqs += await batch.append(drafts[5:])
            await batch.commit()
            return seqs

        async def batches() -> None:
            for round_ in range(loop_rounds):
                drafts = _drafts(size, tag=f"l{number}-r{round_}")
                if round_ % 2:
                    seqs = await connections.run(functools.partial(in_pieces, drafts=drafts))
                else:
                    seqs = await connections.run(functools.partial(append_events_on_loop, events=drafts))
                assert seqs is not None
                with lock:
                    written.append(seqs)

        try:
            asyncio.run(batches())
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close()

    def sequencer() -> None:
        try:
            while not stop.is_set():
                sequence_pending(database)
                time.sleep(0.005)
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=appender, args=(number,)) for number in range(threads)]
    workers += [threading.Thread(target=loop_appender, args=(number,)) for number in range(loops)]
    running = threading.Thread(target=sequencer)
    running.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    running.join()
    assert failures == []
    total = threads * (rounds - rounds // 4) * size + threads * (rounds // 4) + loops * loop_rounds * size
    every = sorted(seq for seqs in written for seq in seqs)
    assert every == list(range(1, total + 1))
    assert all(seqs == sorted(seqs) for seqs in written)
    sequence_pending(database)
    with database.session() as session:
        leaves = session.execute(text(LEAF_SEQS)).all()
    assert [index for index, _ in leaves] == list(range(total))
    assert [seq for _, seq in leaves] == list(range(1, total + 1))
    rows = {row["seq"]: row["operation"] for row in _rows(database)}
    for seqs in written:
        operations = [rows[seq] for seq in seqs]
        assert [int(operation.rsplit("-", 1)[1]) for operation in operations] == list(range(len(seqs)))
    report = _verify(database, tmp_path)
    assert report.ok, report.problems
    assert (report.leaves, report.events) == (total, total)


def test_seq_drawn_for_events_that_never_came_are_a_gap_never_used_later(database: Database, tmp_path: Path) -> None:
    """A batch draws the seq of the events it expects; those left over when it commits are not
    carried to the next batch (a sequencer may have gone past them since): a gap, which the
    tree and the verification take in their stride."""
    _postgresql(database)
    connections = LoopConnections(database.engine, writes=True)

    async def expected_three_more(connection: Connection) -> list[int]:
        batch = OpenBatch(connection)
        await batch.begin()
        seqs = await batch.append(_drafts(2, tag="venu"), expected=3)
        await batch.commit()
        return seqs

    async def two_batches() -> tuple[list[int] | None, list[int] | None]:
        first = await connections.run(expected_three_more)
        second = await connections.run(functools.partial(append_events_on_loop, events=_drafts(2, tag="suivant")))
        return first, second

    try:
        first, second = asyncio.run(two_batches())
    finally:
        connections.close()
    assert (first, second) == ([1, 2], [6, 7])
    sequence_pending(database)
    report = _verify(database, tmp_path)
    assert report.ok, report.problems
    assert (report.leaves, report.events) == (4, 4)
