"""Upgrading a database whose journal was the old hash chain: its events become the first
leaves, in chain order, and the journal verifies before and after new events."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from audit.verify import verify_database
from relais.core.db import Database
from relais.migrate import upgrade
from tests.audit.journal_fixtures import T0, checkpoint, public_keys, settings_for, write_events
from tests.conftest import TEST_DATABASE_URL_VARIABLE, _reset_schema

BEFORE_JOURNAL = "ae57c548ff78"


def test_events_of_the_hash_chain_become_the_first_leaves(tmp_path: Path) -> None:
    url = os.environ.get(TEST_DATABASE_URL_VARIABLE)
    if url:
        _reset_schema(url)
    else:
        url = f"sqlite:///{(tmp_path / 'old.db').as_posix()}"
    upgrade(url, BEFORE_JOURNAL)
    database = Database(url)
    try:
        with database.transaction() as session:
            for seq in (1, 2, 3):
                moment = T0 + timedelta(seconds=seq)
                session.execute(
                    text(
                        "INSERT INTO audit_event (seq, occurred_at, request_id, channel, operation, decision,"
                        " http_status, prev_hash, hash) VALUES (:seq, :t, :r, 'partner-api', 'lire', 'allowed', 200,"
                        " :prev, :hash)"
                    ),
                    {
                        "seq": seq,
                        "t": moment.replace(tzinfo=None).isoformat(sep=" ") if database.dialect == "sqlite" else moment,
                        "r": f"old-{seq}",
                        "prev": f"{seq - 1:064x}",
                        "hash": f"{seq:064x}",
                    },
                )
        upgrade(url)
        settings = settings_for(database, tmp_path)
        with database.session() as session:
            report = verify_database(session, None)
            order = list(
                session.execute(
                    text(
                        "SELECT e.request_id FROM audit_leaf l JOIN audit_event e ON e.id = l.event_id"
                        " ORDER BY l.leaf_index"
                    )
                ).scalars()
            )
        assert report.ok, report.problems
        assert (report.leaves, report.events) == (3, 3)
        assert order == ["old-1", "old-2", "old-3"]
        write_events(database, 2)
        checkpoint(database, settings)
        with database.session() as session:
            report = verify_database(session, public_keys(settings))
        assert report.ok, report.problems
        assert (report.leaves, report.checkpoints) == (5, 1)
    finally:
        database.dispose()
