"""The journal accepts appends only: UPDATE and DELETE leave rows as they were and are
themselves journalled as security events; appends never wait for one another."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from audit.journal import append_event, sequence_pending
from audit.models import AuditEvent
from audit.verify import verify_database
from relais.core.auditing import AuditDraft
from relais.core.db import Database
from tests.audit.journal_fixtures import T0, checkpoint, public_keys, settings_for, write_events

ATTEMPTS = [
    ("audit_event", "UPDATE audit_event SET http_status = 500"),
    ("audit_event", "DELETE FROM audit_event"),
    ("audit_leaf", "UPDATE audit_leaf SET leaf_hash = 'x'"),
    ("audit_leaf", "DELETE FROM audit_leaf"),
    ("audit_checkpoint", "UPDATE audit_checkpoint SET tree_size = 1"),
    ("audit_checkpoint", "DELETE FROM audit_checkpoint"),
]


def _count(database: Database, table: str) -> int:
    with database.session() as session:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608 (test constants)


@pytest.mark.parametrize(("table", "statement"), ATTEMPTS)
def test_update_and_delete_are_refused_and_recorded(
    database: Database, tmp_path: Path, table: str, statement: str
) -> None:
    settings = settings_for(database, tmp_path)
    write_events(database, 3)
    checkpoint(database, settings)
    before = _count(database, table)
    with database.transaction() as session:
        session.execute(text(statement))
    with database.session() as session:
        events = list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())
    security = [event for event in events if event.channel == "security"]
    # One security event per statement, not one per row.
    assert [(e.operation, e.reason, e.decision) for e in security] == [
        ("journal.modification_refusee", f"{statement.split()[0]}:{table}", "denied")
    ]
    assert _count(database, table) == before + (1 if table == "audit_event" else 0)
    assert [e.http_status for e in events[:3]] == [200, 200, 200]
    checkpoint(database, settings)
    with database.session() as session:
        report = verify_database(session, public_keys(settings))
    assert report.ok, report.problems
    assert report.events == 4


def test_truncate_is_refused_on_postgresql(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("TRUNCATE is a PostgreSQL statement")
    write_events(database, 2)
    with pytest.raises(DBAPIError, match="ajout seul"), database.transaction() as session:
        session.execute(text("TRUNCATE audit_event"))
    assert _count(database, "audit_event") == 2


def test_free_text_is_escaped_against_log_injection(database: Database) -> None:
    draft = AuditDraft(
        channel="partner-api",
        operation="lire",
        agent_nom="Martin\r\n2026-01-01 faux=événement",
        reason="a\x1b[31mb\u2028c",
        details={"note\n": ["x\ty"]},
    )
    with database.transaction() as session:
        append_event(session, draft, request_id="r1", http_status=200, occurred_at=T0)
    with database.session() as session:
        event = session.exec(select(AuditEvent)).one()
    assert event.agent_nom == "Martin\\u000d\\u000a2026-01-01 faux=événement"
    assert event.reason == "a\\u001b[31mb\\u2028c"
    assert event.details == {"note\\u000a": ["x\\u0009y"]}


def test_an_append_does_not_wait_for_another_in_flight(database: Database) -> None:
    """Two requests' transactions append concurrently; the sequencer takes both, in seq order,
    even when the first to draw its seq commits last."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite serialises writers by design")
    first = database.session()
    append_event(first, AuditDraft(channel="cli", operation="lent"), request_id="a", http_status=200, occurred_at=T0)
    first.flush()
    # While the first is still open, a second append commits: it did not wait for the first.
    with database.transaction() as second:
        append_event(
            second, AuditDraft(channel="cli", operation="rapide"), request_id="b", http_status=200, occurred_at=T0
        )
    done: list[int] = []
    sequencer = threading.Thread(target=lambda: done.append(sequence_pending(database)))
    sequencer.start()
    # The sequencer waits for the append still in flight (it holds the shared lock).
    probe = Database(database.url)
    try:
        while not done:
            with probe.session() as session:
                waiting = session.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar_one()
            if waiting:
                break
    finally:
        probe.dispose()
    first.commit()
    first.close()
    sequencer.join()
    assert done == [2]
    with database.session() as session:
        rows = session.execute(
            text("SELECT e.operation FROM audit_leaf l JOIN audit_event e ON e.id = l.event_id ORDER BY l.leaf_index")
        ).scalars()
        assert list(rows) == ["lent", "rapide"]


def test_request_ids_and_seq_are_unique_under_many_appends(database: Database) -> None:
    for _ in range(30):
        with database.transaction() as session:
            append_event(
                session,
                AuditDraft(channel="cli", operation="x"),
                request_id=uuid.uuid4().hex,
                http_status=200,
                occurred_at=T0,
            )
    assert sequence_pending(database) == 30
    with database.session() as session:
        seqs = list(session.execute(text("SELECT seq FROM audit_event ORDER BY id")).scalars())
    assert seqs == sorted(set(seqs)) and len(seqs) == 30


def test_the_application_role_may_only_read_and_append(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With RELAIS_AUDIT_APP_ROLE, the migration leaves that role SELECT and INSERT only."""
    import os

    from relais.core.config import get_settings
    from relais.migrate import upgrade
    from tests.conftest import TEST_DATABASE_URL_VARIABLE, _reset_schema

    url = os.environ.get(TEST_DATABASE_URL_VARIABLE)
    if not url or not url.startswith("postgresql"):
        pytest.skip("grants are PostgreSQL's")
    role = "relais_journal_app_test"
    database = Database(url)
    try:
        with database.transaction() as session:
            exists = session.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
            if not exists:
                session.execute(text(f"CREATE ROLE {role}"))
        monkeypatch.setenv("RELAIS_AUDIT_APP_ROLE", role)
        get_settings.cache_clear()
        _reset_schema(url)
        upgrade(url)
        write_events(database, 1)
        with database.transaction() as session:
            session.execute(text(f"SET LOCAL ROLE {role}"))
            append_event(
                session, AuditDraft(channel="cli", operation="app"), request_id="r", http_status=200, occurred_at=T0
            )
        for statement in (
            "UPDATE audit_event SET http_status = 1",
            "DELETE FROM audit_leaf",
            "TRUNCATE audit_checkpoint",
        ):
            with pytest.raises(DBAPIError, match="permission denied"), database.transaction() as session:
                session.execute(text(f"SET LOCAL ROLE {role}"))
                session.execute(text(statement))
        assert _count(database, "audit_event") == 2
    finally:
        get_settings.cache_clear()
        database.dispose()
