"""Two worker processes on one database deliver every event once, without duplicates.

Runs on the database of the run: PostgreSQL (``SELECT … FOR UPDATE SKIP LOCKED``) when
``RELAIS_TEST_DATABASE_URL`` is set, the embedded SQLite file otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from adapters.outbound.models import DeliveryAttempt
from relais.core.db import Database
from relais.core.keys import generate_keyset_document, parse_keyset_document
from relais.core.outbox import DELIVERED
from tests.adapters.outbound_support import add_connector, editor, messages, publish

EVENTS = 40


def test_two_worker_processes_deliver_each_event_once(database: Database, database_url: str, tmp_path: Path) -> None:
    document = generate_keyset_document(datetime.now(UTC))
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(document))
    keys = parse_keyset_document(document)
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url))
        ids = publish(database, EVENTS)
        # Slow enough answers that both processes are at work at the same time.
        fake.switches.delay = 0.05
        env = {
            **os.environ,
            "RELAIS_DATABASE_URL": database_url,
            "RELAIS_KEYS_FILE": str(keys_file),
            "RELAIS_DATA_DIR": str(tmp_path),
            "RELAIS_CONNECTOR_BATCH_SIZE": "3",
        }
        command = [sys.executable, "-c", "from relais.cli.main import main; main()", "connecteurs", "worker", "--once"]
        workers = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
            for _ in range(2)
        ]
        outputs = [worker.communicate(timeout=300) for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], outputs

        assert sorted(fake.state.ids()) == sorted(ids)
        assert fake.state.duplicates == 0
        assert fake.state.calls == EVENTS
    assert {m.status for m in messages(database)} == {DELIVERED}
    with database.session() as session:
        attempts = list(session.exec(select(DeliveryAttempt)))
    assert len(attempts) == EVENTS and {a.attempt for a in attempts} == {1}
    sent = [int(out.strip().rsplit(" ", 1)[-1]) for out, _ in outputs]
    assert sum(sent) == EVENTS, sent
