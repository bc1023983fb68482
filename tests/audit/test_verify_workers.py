"""The fast scan in worker processes (fresh interpreters), started from a process that runs
other threads (as the web console's verification does): the same report as the reference
checker, on an honest journal and on a tampered one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from audit import verify, verify_scan
from audit.journal import append_event
from audit.verify import VerifyReport, verify_database
from relais.core.auditing import AuditDraft
from relais.core.config import Settings
from relais.core.db import Database
from tests.audit.journal_fixtures import T0, checkpoint, public_keys, settings_for, tampering, write_events


def _partner_calls(database: Database, count: int, *, start_minute: int) -> None:
    """Events without ``details`` (partner calls, the bulk of a journal), one transaction."""
    with database.transaction() as session:
        for index in range(count):
            draft = AuditDraft(
                channel="partner-api",
                operation="rechercherUsager",
                client_id="cd33",
                organisation="CD33",
                agent_identifiant=f"AGT-{index:04d}",
                usager_id=str(2000 + index),
                scopes="api_x x",
                reason="Éléonore « test »" if index % 3 == 0 else None,
            )
            append_event(
                session,
                draft,
                request_id=uuid.uuid4().hex,
                http_status=200,
                occurred_at=T0 + timedelta(minutes=start_minute + index, microseconds=index),
            )


@pytest.fixture
def busy_process() -> Iterator[None]:
    """Another thread runs for the whole test: forking now could copy a lock it holds."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="busy", daemon=True)
    thread.start()
    try:
        assert threading.active_count() > 1
        yield
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def started_workers(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The worker processes the scan started (their command lines)."""
    started: list[list[str]] = []
    real = subprocess.Popen

    def record(command: list[str], **options: Any) -> Any:
        started.append(command)
        return real(command, **options)

    monkeypatch.setattr(verify_scan.subprocess, "Popen", record)
    return started


def _journal(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # Ranges of 4 leaves, so that 2 workers share several ranges and the parent stitches them.
    monkeypatch.setattr(verify_scan, "CHUNK", 4)
    settings = settings_for(database, tmp_path)
    _partner_calls(database, 7, start_minute=0)
    write_events(database, 3, start=T0 + timedelta(hours=1))  # with details: the row path
    _partner_calls(database, 6, start_minute=120)
    checkpoint(database, settings)
    _partner_calls(database, 3, start_minute=240)
    checkpoint(database, settings, now=T0 + timedelta(minutes=1))
    return settings


def _reference(database: Database, settings: Settings) -> VerifyReport:
    with database.session() as session:
        return verify_database(session, public_keys(settings), reference=True)


def test_spawned_workers_verify_an_honest_journal_alone(
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    busy_process: None,
    started_workers: list[list[str]],
) -> None:
    settings = _journal(database, tmp_path, monkeypatch)
    reference = _reference(database, settings)
    assert reference.ok, reference.problems

    def refuse(*_args: object) -> None:
        raise AssertionError("the reference checker ran: the workers had a doubt")

    monkeypatch.setattr(verify, "_reference_leaves", refuse)
    with database.session() as session:
        fast = verify_database(session, public_keys(settings), workers=2)
    assert [command[:2] for command in started_workers] == [[sys.executable, "-c"]] * 2
    assert fast.as_json() == reference.as_json()
    assert (fast.leaves, fast.events, fast.checkpoints) == (19, 19, 2)


@pytest.mark.parametrize("tamper", ["payload", "replay"])
def test_workers_hand_a_tampered_journal_to_the_reference(
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    busy_process: None,
    started_workers: list[list[str]],
    tamper: str,
) -> None:
    settings = _journal(database, tmp_path, monkeypatch)
    with tampering(database) as session:
        if tamper == "payload":
            # A partner call in the fourth range (partner calls only: the bulk path).
            session.execute(text("UPDATE audit_event SET usager_id = '9999' WHERE seq = 14"))
        else:
            # Leaf 2's event copied with a new seq and an accepted hash, sealed as leaf 19.
            columns = (
                "occurred_at, request_id, channel, operation, client_id, organisation, agent_identifiant,"
                " usager_id, decision, reason, http_status, scopes, details, prev_hash"
            )
            session.execute(
                text(
                    f"INSERT INTO audit_event (seq, {columns}, hash)"  # noqa: S608 (test constants)
                    f" SELECT 100, {columns}, 'pending-100' FROM audit_event WHERE seq = 3"
                )
            )
    if tamper == "replay":
        checkpoint(database, settings, now=T0 + timedelta(minutes=2))
    reference = _reference(database, settings)
    assert not reference.ok
    expected = {"payload": ("contenu_modifie", 13), "replay": ("segment_rejoue", 19)}[tamper]
    assert reference.first is not None and (reference.first.kind, reference.first.leaf_index) == expected
    with database.session() as session:
        fast = verify_database(session, public_keys(settings), workers=2)
    assert [command[:2] for command in started_workers] == [[sys.executable, "-c"]] * 2
    assert fast.as_json() == reference.as_json()


def test_the_command_line_takes_a_number_of_workers(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started_workers: list[list[str]]
) -> None:
    """``relais audit verify --workers 2``: the same JSON report as the reference checker's."""
    from click.testing import CliRunner

    from relais.cli.audit import audit_group
    from relais.core.config import get_settings

    settings = _journal(database, tmp_path, monkeypatch)
    reference = _reference(database, settings)
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_DATABASE_URL", database.url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(audit_group, ["verify", "--json", "--workers", "2"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == reference.as_json()
    assert [command[:2] for command in started_workers] == [[sys.executable, "-c"]] * 2
