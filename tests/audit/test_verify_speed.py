"""The fast verification path (``audit.verify_scan``): it reaches the reference checker's report
on a sound journal without walking the leaves one by one, and hands any doubt to it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from audit import verify, verify_scan
from audit.journal import CONTENT_FIELDS, append_event, event_content, leaf_bytes, sequence_pending
from audit.retention import purge_expired
from audit.verify import VerifyReport, verify_database
from relais.core.auditing import AuditDraft
from relais.core.db import Database
from tests.audit.journal_fixtures import (
    T0,
    checkpoint,
    events_by_seq,
    public_keys,
    settings_for,
    tampering,
    write_events,
)


def _refuse_reference(*_args: object) -> None:
    raise AssertionError("the reference checker ran: the fast scan had a doubt")


def _both(database: Database, settings: object, workers: int) -> tuple[VerifyReport, VerifyReport]:
    with database.session() as session:
        reference = verify_database(session, public_keys(settings), reference=True)  # type: ignore[arg-type]
    with database.session() as session:
        fast = verify_database(session, public_keys(settings), workers=workers)  # type: ignore[arg-type]
    return reference, fast


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sound_journal_is_verified_by_the_fast_scan_alone(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Purged payloads, refused modification attempts, checkpoints inside ranges and on their
    edges, events not yet sealed: the same report as the reference, without it."""
    monkeypatch.setattr(verify_scan, "CHUNK", 4)
    settings = settings_for(database, tmp_path)
    now = T0 + timedelta(days=400)
    write_events(database, 5, start=T0)  # old enough to be purged
    write_events(database, 3, start=now - timedelta(days=3))
    checkpoint(database, settings, now=now)  # 8 leaves: on a range edge
    purge_expired(database, settings, now=now)  # signs a checkpoint, deletes 5 payloads
    with database.transaction() as session:
        # Refused by the append-only trigger, which journals the attempt.
        session.execute(text("UPDATE audit_event SET reason = 'x' WHERE operation = 'lireUsager'"))
    write_events(database, 3, start=now - timedelta(days=1))
    checkpoint(database, settings, now=now + timedelta(minutes=1))  # inside a range
    write_events(database, 2, start=now)  # committed, not yet sealed

    reference, _ = _both(database, settings, workers)
    monkeypatch.setattr(verify, "_reference_leaves", _refuse_reference)
    with database.session() as session:
        fast = verify_database(session, public_keys(settings), workers=workers)

    assert fast.ok, fast.problems
    assert fast.as_json() == reference.as_json()
    assert (fast.purged, fast.pending) == (5, 2)
    assert fast.attempts == 1 and fast.attempt_list[0]["reason"] == reference.attempt_list[0]["reason"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_replay_of_an_earlier_range_gets_the_reference_report(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """A copy of leaf 1's event (new seq, valid hash) sealed as leaf 6: each range alone looks
    sound; only the stitching sees the copy, and the reference then locates it."""
    monkeypatch.setattr(verify_scan, "CHUNK", 4)
    settings = settings_for(database, tmp_path)
    ids = write_events(database, 6)
    with tampering(database) as session:
        columns = (
            "occurred_at, request_id, channel, operation, client_id, organisation, agent_identifiant,"
            " usager_id, decision, http_status, scopes, details, prev_hash"
        )
        session.execute(
            text(
                f"INSERT INTO audit_event (seq, {columns}, hash)"  # noqa: S608 (test constants)
                f" SELECT 100, {columns}, 'pending-100' FROM audit_event WHERE id = :id"
            ),
            {"id": ids[1]},
        )
    checkpoint(database, settings)
    reference, fast = _both(database, settings, workers)
    assert [problem.kind for problem in reference.problems] == ["segment_rejoue"]
    assert reference.first is not None and reference.first.leaf_index == 6
    assert fast.as_json() == reference.as_json()


@pytest.mark.parametrize("workers", [1, 2])
def test_seq_going_back_across_ranges_gets_the_reference_report(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(verify_scan, "CHUNK", 4)
    settings = settings_for(database, tmp_path)
    ids = write_events(database, 8)
    checkpoint(database, settings)
    with database.session() as session:
        leaves = dict(session.execute(text("SELECT event_id, leaf_hash FROM audit_leaf")).all())
    with tampering(database) as session:
        # Leaves 3 and 4 swapped: the last of the first range and the first of the second.
        session.execute(text("DELETE FROM audit_leaf WHERE leaf_index IN (3, 4)"))
        for index, event_id in ((3, ids[4]), (4, ids[3])):
            session.execute(
                text("INSERT INTO audit_leaf (leaf_index, event_id, leaf_hash) VALUES (:i, :e, :h)"),
                {"i": index, "e": event_id, "h": leaves[event_id]},
            )
    reference, fast = _both(database, settings, workers)
    assert reference.first is not None and (reference.first.kind, reference.first.leaf_index) == ("ordre_modifie", 4)
    assert fast.as_json() == reference.as_json()


def test_the_canonical_bytes_are_the_journals(database: Database) -> None:
    """The scan's leaf encoding gives ``journal.leaf_bytes`` exactly, with and without details."""
    write_events(database, 2)
    with database.session() as session:
        events = events_by_seq(session)
    for event in events:
        content = event_content(event)
        values = [content[name] for name in CONTENT_FIELDS]
        assert verify_scan.canonical_bytes(values) == leaf_bytes(content)
        content["details"] = None
        values = [content[name] for name in CONTENT_FIELDS]
        assert verify_scan.canonical_bytes(values) == leaf_bytes(content)


def test_hashes_rewritten_in_capitals_get_the_reference_report(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same digest spelt in capitals in both tables: the reference flags the event hash;
    the fast scan must not pass it for sound."""
    monkeypatch.setattr(verify_scan, "CHUNK", 4)
    settings = settings_for(database, tmp_path)
    ids = write_events(database, 6)
    checkpoint(database, settings)
    with tampering(database) as session:
        session.execute(text("UPDATE audit_event SET hash = upper(hash) WHERE id = :id"), {"id": ids[2]})
        session.execute(text("UPDATE audit_leaf SET leaf_hash = upper(leaf_hash) WHERE event_id = :id"), {"id": ids[2]})
    reference, fast = _both(database, settings, 1)
    assert reference.first is not None and (reference.first.kind, reference.first.leaf_index) == ("contenu_modifie", 2)
    assert fast.as_json() == reference.as_json()


def _partner_calls(database: Database, count: int) -> None:
    """Events without ``details``, as most of a journal: what the bulk path takes."""
    with database.transaction() as session:
        for index in range(count):
            draft = AuditDraft(
                channel="partner-api",
                operation="rechercherUsager",
                client_id="cd33",
                organisation="CD33",
                usager_id=str(index),
                reason='guillemets " et \\ barre, accents éàü' if index % 2 else None,
            )
            append_event(
                session,
                draft,
                request_id=uuid.uuid4().hex,
                http_status=200 + index % 3,
                occurred_at=T0 + timedelta(seconds=index, microseconds=index * 7),
            )


def _range(database: Database, *, bulk: bool, monkeypatch: pytest.MonkeyPatch) -> verify_scan.RangeResult:
    with monkeypatch.context() as patch:
        if not bulk:
            patch.setattr(verify_scan._RangeScan, "_bulk", lambda *_args: False)
        else:
            patch.setattr(verify_scan._RangeScan, "_rows", _refuse_reference)
        with database.session() as session:
            connection = session.connection()
            return verify_scan._scan_range(connection, database.dialect == "sqlite", 0, 9, 0, [5])


def test_the_bulk_path_and_the_row_path_agree(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same hashes, fingerprints and counts whether a batch is taken at once or row by row
    (batches of 4 rows: the last one is short)."""
    monkeypatch.setattr(verify_scan, "_STREAM", 4)
    _partner_calls(database, 9)
    sequence_pending(database)
    bulk = _range(database, bulk=True, monkeypatch=monkeypatch)
    rows = _range(database, bulk=False, monkeypatch=monkeypatch)
    assert bulk.sound and rows.sound
    assert bulk == rows
    assert (bulk.events, len(bulk.fingerprints), sorted(bulk.marks)) == (9, 9 * 8, [5])


def test_a_replay_across_the_two_paths_is_seen(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy taken by the bulk path of an event the row path read: one fingerprint."""
    monkeypatch.setattr(verify_scan, "_STREAM", 2)
    _partner_calls(database, 2)
    with tampering(database) as session:
        columns = (
            "occurred_at, request_id, channel, operation, client_id, organisation, usager_id, decision, reason,"
            " http_status"
        )
        session.execute(
            text(
                f"INSERT INTO audit_event (seq, {columns}, prev_hash, hash)"  # noqa: S608 (test constants)
                f" SELECT seq + 10, {columns}, '', 'pending-' || seq FROM audit_event"
            )
        )
    sequence_pending(database)
    calls = {"bulk": 0}
    real = verify_scan._RangeScan._bulk

    def first_batch_row_by_row(scan: verify_scan._RangeScan, rows: list[object]) -> bool:
        calls["bulk"] += 1
        return calls["bulk"] > 1 and real(scan, rows)

    monkeypatch.setattr(verify_scan._RangeScan, "_bulk", first_batch_row_by_row)
    with database.session() as session:
        result = verify_scan._scan_range(session.connection(), database.dialect == "sqlite", 0, 4, 0, [])
    assert result.sound  # each range alone is sound: the parent sees the copy
    fingerprints = [result.fingerprints[i : i + 8] for i in range(0, len(result.fingerprints), 8)]
    assert fingerprints[:2] == fingerprints[2:]
