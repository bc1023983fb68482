"""Crash test: a real ``relais serve`` process under load is killed with SIGKILL several times.
After each restart, and at the end, the journal verifies and every call that was answered
2xx has its event (the response leaves only after the event is committed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import text

import habilitations.clients
from audit.checkpoints import create_checkpoint
from audit.verify import verify_database
from relais.core.config import Settings
from relais.core.db import Database
from relais.core.keys import load_or_create_keyset
from relais.importer import import_file
from tests.audit.journal_fixtures import public_keys
from tests.support.dataset import dataset
from tests.support.people import GIRONDE
from tests.support.scopes import AGENT, RECHERCHE, RECHERCHE_SCOPES, SECRET, TOKEN_URL

KILLS = 3
CALLS_PER_LIFE = 12
WORKERS = 4
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-c", "from relais.cli.main import main; main()", "serve", "--host", "127.0.0.1"]
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (our own entry point, from this checkout)
            [*command, "--port", str(port)], env=env, stdout=output, stderr=output, cwd=ROOT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            if process.poll() is not None:
                raise AssertionError(f"relais serve stopped: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                threading.Event().wait(0.1)
        else:
            raise AssertionError("relais serve did not start")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _load(base: str, answered: list[str], stop: threading.Event) -> None:
    """Token then search, again and again; keep the request ids of the 2xx answers."""
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            token_id = uuid.uuid4().hex
            try:
                response = client.post(
                    TOKEN_URL,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "cd33",
                        "client_secret": SECRET,
                        "scope": RECHERCHE_SCOPES,
                    },
                    headers={"X-Request-Id": token_id},
                )
                if response.status_code < 300:
                    answered.append(token_id)
                search_id = uuid.uuid4().hex
                found = client.post(
                    f"{RECHERCHE}/par-numero-francetravail",
                    json={"numeroFranceTravail": GIRONDE.numero},
                    headers={
                        "Authorization": f"Bearer {response.json()['access_token']}",
                        **AGENT,
                        "X-Request-Id": search_id,
                    },
                )
                if found.status_code < 300:
                    answered.append(search_id)
            except (httpx.TransportError, KeyError, ValueError):
                return


def test_sigkill_under_load_loses_no_answered_call(database_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url, generate_dev_keys=True)
    keys = load_or_create_keyset(settings)
    records = tmp_path / "dataset.jsonl"
    records.write_text("\n".join(json.dumps(record) for record in dataset()) + "\n")
    database = Database(database_url)
    # Cheap argon2 parameters are stored in the hash, so the server verifies cheaply too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(habilitations.clients, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
        import_file(database, keys, records)
    env = {
        **os.environ,
        "RELAIS_DATA_DIR": str(tmp_path),
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_GENERATE_DEV_KEYS": "true",
        "RELAIS_RATE_LIMIT_PER_SECOND": "10000",
        "RELAIS_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "1",
        "RELAIS_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    answered: list[str] = []
    port = _free_port()
    try:
        for life in range(KILLS + 1):
            with _server(env, port, tmp_path / "serve.log") as process:
                stop = threading.Event()
                workers = [
                    threading.Thread(target=_load, args=(f"http://127.0.0.1:{port}", answered, stop))
                    for _ in range(WORKERS)
                ]
                target = len(answered) + CALLS_PER_LIFE
                for worker in workers:
                    worker.start()
                # On PostgreSQL, sign checkpoints while the load runs, as another process would.
                # (A saturated SQLite leaves an outside writer starving: there the app's own
                # checkpointer shares the request queue; here we sign between the crashes.)
                while len(answered) < target and process.poll() is None:
                    if database.dialect == "postgresql":
                        create_checkpoint(database, settings, now=_now())
                    stop.wait(0.2)
                if life < KILLS:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                stop.set()
                for worker in workers:
                    worker.join()
            create_checkpoint(database, settings, now=_now())
        create_checkpoint(database, settings, now=_now())
        with database.session() as session:
            report = verify_database(session, public_keys(settings))
            recorded = set(session.execute(text("SELECT request_id FROM audit_event")).scalars())
    finally:
        database.dispose()
    assert report.ok, report.problems
    assert report.pending == 0 and report.events == report.leaves
    assert len(answered) >= (KILLS + 1) * CALLS_PER_LIFE
    missing = [request_id for request_id in answered if request_id not in recorded]
    assert missing == []


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)
