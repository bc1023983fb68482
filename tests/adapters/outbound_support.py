"""Helpers of the outbound connector tests: an organisation, a connector, a worker on a clock."""

from __future__ import annotations

import random
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from adapters.outbound import events, registry
from adapters.outbound.fake_editor import FakeEditor
from adapters.outbound.webhook import WebhookSender
from adapters.outbound.worker import Worker
from audit.journal import JournalRecorder
from parcours.events import RDV_PRIS
from relais.core.config import Settings
from relais.core.db import Database
from relais.core.keys import KeySet, generate_keyset_document, parse_keyset_document
from relais.core.outbox import OutboxMessage
from relais.core.tables import Organisation


def keyset() -> KeySet:
    return parse_keyset_document(generate_keyset_document(datetime.now(UTC)))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "connector_timeout_seconds": 2.0,
        "connector_max_attempts": 10,
        "connector_backoff_base_seconds": 10.0,
        "connector_pause_after_failures": 50,
        "connector_batch_size": 5,
        **overrides,
    }
    return Settings(**values)


def add_organisation(session: Session, code: str = "CD33") -> Organisation:
    organisation = Organisation(code=code, type="CD", libelle=f"Département {code}", territoire=[code[2:]])
    session.add(organisation)
    session.flush()
    return organisation


def add_connector(
    database: Database, keys: KeySet, url: str, *, name: str = "solis-cd33", organisation: str = "CD33", **extra: Any
) -> dict[str, bytes]:
    """A connector of ``organisation`` subscribed to every event: its {kid: secret}."""
    with database.session() as session:
        if session.exec(select(Organisation).where(Organisation.code == organisation)).first() is None:
            add_organisation(session, organisation)
        connector, kid, secret = registry.create_connector(
            session,
            keys,
            name=name,
            organisation=organisation,
            url=url,
            events=["*"],
            notifications=extra.pop("notifications", False),
            now=datetime.now(UTC),
            allow_http=True,
        )
        for field, value in extra.items():
            setattr(connector, field, value)
        session.add(connector)
        session.commit()
    return {kid: secret.encode()}


def publish(database: Database, count: int, *, organisation: str = "CD33", now: datetime | None = None) -> list[str]:
    """``count`` events for the organisation, committed: their event ids."""
    with database.session() as session:
        found = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        for index in range(count):
            events.publish(
                session, [found.id], RDV_PRIS, {"rendezVous": {"id": f"RDV-{index}"}}, now or datetime.now(UTC)
            )
        session.commit()
        return [
            str(m.payload["id"]) for m in session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at)))
        ]


def messages(database: Database) -> list[OutboxMessage]:
    with database.session() as session:
        return list(session.exec(select(OutboxMessage)))


def worker(database: Database, keys: KeySet, config: Settings, clock: Clock, seed: int = 1) -> Worker:
    return Worker(
        database, keys, config, WebhookSender(), audit=JournalRecorder(), clock=clock, rng=random.Random(seed)
    )


def waiting(database: Database) -> int:
    return sum(1 for m in messages(database) if m.status in ("pending", "failed"))


def drain(runner: Worker, clock: Clock, rounds: int = 60, step_hours: float = 1.0) -> None:
    """Run the worker, then move the clock on, until nothing waits any more (bounded)."""
    for _ in range(rounds):
        runner.run_until_idle()
        if waiting(runner.database) == 0:
            return
        clock.advance(hours=step_hours)


@contextmanager
def editor(keys: dict[str, bytes], **kwargs: Any) -> Iterator[FakeEditor]:
    with FakeEditor(keys, **kwargs) as running:
        yield running


def agent_with_role(hub: Any, organisation: str, role: str | None, identifiant: str) -> int:
    """An active agent of ``organisation`` holding ``role`` there (None: no designation)."""
    from habilitations.models import Agent, Designation

    with hub.services.database.session() as session:
        org = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        agent = Agent(organisation_id=org.id, identifiant=identifiant, nom="Agent", prenom="Test")
        session.add(agent)
        session.flush()
        assert agent.id is not None and org.id is not None
        if role is not None:
            session.add(
                Designation(
                    organisation_id=org.id, agent_id=agent.id, role=role, debut=hub.clock.now - timedelta(days=1)
                )
            )
        session.commit()
        return agent.id


def admin_headers(hub: Any, organisation: str, role: str | None, identifiant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.admin_token(agent_with_role(hub, organisation, role, identifiant))}"}


class FakeSmtp:
    """A minimal SMTP server (no TLS offered): what an institution's local relay would accept."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.reply("220 fake ESMTP")
                sender, recipients = "", list[str]()
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 fake")
                    elif verb == "MAIL":
                        sender, recipients = command.split(":", 1)[1].strip(" <>"), list[str]()
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command.split(":", 1)[1].strip(" <>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        while (chunk := self.rfile.readline()) != b".\r\n":
                            data += chunk
                        outer.messages.append((sender, recipients, data))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

            def reply(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeSmtp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
