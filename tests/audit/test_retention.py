"""Retention: old payloads go, leaf hashes and checkpoints stay, and the journal still verifies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from audit.retention import purge_expired
from audit.verify import verify_database
from relais.core.config import Settings
from relais.core.db import Database
from tests.audit.journal_fixtures import T0, public_keys, settings_for, tampering, write_events

NOW = T0 + timedelta(days=400)


def _count(database: Database, sql: str) -> int:
    with database.session() as session:
        return int(session.execute(text(sql)).scalar_one())


def test_retention_is_one_year_by_default_and_three_at_most() -> None:
    assert Settings().audit_retention_days == 365
    with pytest.raises(ValidationError):
        Settings(audit_retention_days=4 * 365)


def test_purge_drops_old_payloads_keeps_leaves_and_verifies(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    write_events(database, 4, start=T0)  # 400 days old: beyond a year
    write_events(database, 3, start=NOW - timedelta(days=10))
    result = purge_expired(database, settings, now=NOW)
    assert (result.leaf_end, result.events_deleted) == (4, 4)
    assert _count(database, "SELECT count(*) FROM audit_leaf") == 7
    # 3 recent events and the purge's own event remain.
    assert _count(database, "SELECT count(*) FROM audit_event") == 4
    with database.session() as session:
        report = verify_database(session, public_keys(settings))
    assert report.ok, report.problems
    assert (report.purged, report.events, report.leaves, report.pending) == (4, 3, 7, 1)
    assert report.purges[0]["leafEnd"] == 4 and "4 contenus purgés" in report.summary()
    # Nothing more to purge; the purge event itself was journalled.
    assert purge_expired(database, settings, now=NOW).purge_id is None
    with database.session() as session:
        operation = session.execute(text("SELECT operation FROM audit_event ORDER BY seq DESC")).scalars().first()
    assert operation == "audit.purge"


def test_a_recent_event_cannot_be_deleted_even_after_a_purge(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    write_events(database, 2, start=T0)
    write_events(database, 2, start=NOW)
    purge_expired(database, settings, now=NOW)
    kept = _count(database, "SELECT count(*) FROM audit_event WHERE channel = 'partner-api'")
    with database.transaction() as session:
        session.execute(text("DELETE FROM audit_event WHERE channel = 'partner-api'"))
    assert _count(database, "SELECT count(*) FROM audit_event WHERE channel = 'partner-api'") == kept == 2


def test_an_unsigned_purge_is_reported(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    write_events(database, 3, start=T0)
    write_events(database, 2, start=NOW)
    purge_expired(database, settings, now=NOW)
    # Someone with the database but not the key widens the purge to erase recent events.
    with tampering(database) as session:
        session.execute(text("UPDATE audit_purge SET leaf_end = 5"))
        session.execute(text("DELETE FROM audit_event WHERE channel = 'partner-api'"))
    with database.session() as session:
        report = verify_database(session, public_keys(settings))
    kinds = [problem.kind for problem in report.problems]
    assert kinds[0] == "purge_non_signee"
    assert "evenement_supprime" in kinds
