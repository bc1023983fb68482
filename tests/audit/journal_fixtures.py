"""Helpers for the journal tests: write events as the CLI does, sign checkpoints, and tamper
with the tables the way someone holding the database owner's password could (triggers off)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text
from sqlmodel import Session

from audit.checkpoints import create_checkpoint, signing_key
from audit.journal import append_event
from audit.models import AuditCheckpoint, AuditEvent
from audit.verify import Problem, VerifyReport
from relais.core.auditing import AuditDraft
from relais.core.config import Settings
from relais.core.db import Database

JOURNAL_TABLES = ("audit_event", "audit_leaf", "audit_checkpoint", "audit_purge")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def settings_for(database: Database, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, database_url=database.url)


def write_events(database: Database, count: int, *, start: datetime = T0, operation: str = "lireUsager") -> list[int]:
    """``count`` events, one transaction each, one minute apart; returns their ids."""
    ids = []
    for index in range(count):
        with database.transaction() as session:
            draft = AuditDraft(
                channel="partner-api",
                operation=operation,
                client_id="cd33",
                organisation="CD33",
                agent_identifiant=f"AGT-{index:04d}",
                usager_id=str(1000 + index),
                scopes="api_x x",
                details={"n": index},
            )
            event = append_event(
                session,
                draft,
                request_id=uuid.uuid4().hex,
                http_status=200,
                occurred_at=start + timedelta(minutes=index),
            )
            session.flush()
            assert event.id is not None
            ids.append(event.id)
    return ids


def checkpoint(database: Database, settings: Settings, *, now: datetime = T0, force: bool = False) -> AuditCheckpoint:
    made = create_checkpoint(database, settings, now=now, force=force)
    assert made is not None
    return made


def public_keys(settings: Settings) -> list[Ed25519PublicKey]:
    return [signing_key(settings).public_key()]


@contextmanager
def tampering(database: Database) -> Iterator[Session]:
    """A transaction in which the append-only triggers do not fire."""
    with database.transaction() as session:
        if database.dialect == "postgresql":
            session.execute(text("SET LOCAL session_replication_role = replica"))
            yield session
            return
        triggers = session.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'audit_%append_only%'")
        ).all()
        for name, _ in triggers:
            session.execute(text(f"DROP TRIGGER {name}"))
        yield session
        session.flush()
        for _, sql in triggers:
            session.execute(text(sql))


def events_by_seq(session: Session) -> list[AuditEvent]:
    from sqlmodel import col, select

    return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def first_problem(report: VerifyReport) -> Problem:
    """The first inconsistency a verification found (the test fails if it found none)."""
    assert report.first is not None, report.summary()
    return report.first
