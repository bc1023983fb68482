"""A refused tampering attempt never makes an honest journal look broken: the events the
append-only triggers write are leaves of their own, ``relais audit verify`` passes and lists
the attempts, for as long as the journal lives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import col, select

from audit.models import AuditEvent
from audit.verify import verify_database
from relais.cli.audit import audit_group
from relais.core.config import get_settings
from relais.core.db import Database
from tests.audit.journal_fixtures import checkpoint, public_keys, settings_for, write_events

ATTEMPTS = ("UPDATE audit_event SET reason = 'efface'", "DELETE FROM audit_event")


@pytest.fixture
def cli_settings(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_DATABASE_URL", database.url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _attempt_in_one_second(database: Database) -> None:
    """Both attempts within one second, as an intruder's script would: PostgreSQL stamps a
    transaction's events with its start; SQLite with the second, so start on a fresh one."""
    if database.dialect == "sqlite":
        time.sleep(1.05 - time.time() % 1)
    with database.transaction() as session:
        for statement in ATTEMPTS:
            session.execute(text(statement))


def _next_seq(database: Database) -> str:
    """A subquery drawing the next ``seq`` as the application does, as column ``s``."""
    if database.dialect == "postgresql":
        return "SELECT nextval('audit_event_seq_seq') AS s"
    return "SELECT coalesce(max(seq), 0) + 1 AS s FROM audit_event"


def _security_events(database: Database) -> list[AuditEvent]:
    with database.session() as session:
        return list(
            session.exec(select(AuditEvent).where(AuditEvent.channel == "security").order_by(col(AuditEvent.seq)))
        )


def test_refused_update_and_delete_then_checkpoint_verify_and_list_them(database: Database, cli_settings: None) -> None:
    write_events(database, 3)
    runner = CliRunner()
    assert runner.invoke(audit_group, ["checkpoint"]).exit_code == 0

    _attempt_in_one_second(database)
    made = runner.invoke(audit_group, ["checkpoint"])
    verified = runner.invoke(audit_group, ["verify"])

    security = _security_events(database)
    assert [event.reason for event in security] == ["UPDATE:audit_event", "DELETE:audit_event"]
    assert security[0].occurred_at == security[1].occurred_at
    # Each its own request id: two distinct leaves, not a copy of one another.
    assert len({event.request_id for event in security}) == 2
    assert all(event.request_id.startswith("trigger:") for event in security)
    assert made.exit_code == 0 and "5 feuilles" in made.output
    assert verified.exit_code == 0, verified.output
    assert "Journal intègre : 5 feuilles, 5 événements" in verified.output
    assert "2 tentatives de modification refusées" in verified.output
    assert "tentative refusée" in verified.output and "UPDATE:audit_event (feuille 3" in verified.output
    assert "DELETE:audit_event (feuille 4" in verified.output
    # Nothing was changed or deleted.
    with database.session() as session:
        kept = session.exec(select(AuditEvent).where(AuditEvent.channel != "security")).all()
    assert len(kept) == 3 and all(event.reason != "efface" for event in kept)


def test_attempts_written_by_the_former_triggers_verify_too(database: Database, tmp_path: Path) -> None:
    """Journals migrated before the distinct request ids hold events all named ``trigger``:
    an UPDATE and a DELETE refused in the same second still verify as two attempts."""
    settings = settings_for(database, tmp_path)
    write_events(database, 2)
    if database.dialect == "postgresql":
        now = "now()"
    else:
        now = "'2026-01-05 09:30:00.000000'"
    with database.transaction() as session:
        for what in ("UPDATE:audit_event", "DELETE:audit_event"):
            # The former triggers' own INSERT (c0ffee000001), request id "trigger" for all.
            session.execute(
                text(
                    "INSERT INTO audit_event (seq, occurred_at, request_id, channel, operation, decision, reason,"  # noqa: S608 (test constants)
                    " http_status, details, prev_hash, hash)"
                    f" SELECT n.s, {now}, 'trigger', 'security', 'journal.modification_refusee', 'denied',"
                    f" :what, 403, NULL, '', 'pending-' || n.s FROM ({_next_seq(database)}) n"
                ),
                {"what": what},
            )
    checkpoint(database, settings)
    with database.session() as session:
        report = verify_database(session, public_keys(settings))
    assert report.ok, report.problems
    assert report.attempts == 2
    assert [attempt["reason"] for attempt in report.attempt_list] == ["UPDATE:audit_event", "DELETE:audit_event"]


def test_a_replayed_copy_of_an_attempt_is_still_a_replay(database: Database, tmp_path: Path) -> None:
    """Telling attempts apart does not blind the replay check: the same attempt appended twice
    (same request id, time and reason) is reported."""
    settings = settings_for(database, tmp_path)
    write_events(database, 1)
    _attempt_in_one_second(database)
    [attempt] = [event for event in _security_events(database) if event.reason == "UPDATE:audit_event"]
    columns = "occurred_at, request_id, channel, operation, decision, reason, http_status, prev_hash"
    with database.transaction() as session:
        session.execute(
            text(
                f"INSERT INTO audit_event (seq, {columns}, details, hash)"  # noqa: S608 (test constants)
                f" SELECT n.s, {columns}, NULL, 'pending-' || n.s FROM audit_event, ({_next_seq(database)}) n"
                " WHERE id = :id"
            ),
            {"id": attempt.id},
        )
    checkpoint(database, settings)
    with database.session() as session:
        report = verify_database(session, public_keys(settings))
    assert [problem.kind for problem in report.problems] == ["segment_rejoue"]
