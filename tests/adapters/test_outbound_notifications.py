"""People's notifications from the outbox reach their organisation's notification channel."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from sqlmodel import select

from adapters.outbound import registry
from adapters.outbound.mail import SmtpSender
from adapters.outbound.webhook import WebhookSender
from adapters.outbound.worker import NO_ADDRESS, NO_CHANNEL, Worker
from audit.journal import JournalRecorder
from habilitations.models import ACTIF, RGC_SUPPLEANT, RGC_TITULAIRE, RSSI, Agent, Designation
from relais.core.db import Database
from relais.core.keys import KeySet
from relais.core.outbox import enqueue
from relais.core.tables import Organisation
from tests.adapters.outbound_support import (
    Clock,
    FakeSmtp,
    add_connector,
    editor,
    keyset,
    messages,
    publish,
    settings,
    worker,
)


def test_notifications_go_to_the_organisation_s_channel_or_wait_visibly(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    with editor({}) as fake:
        fake.state.keys.update(add_connector(database, keys, fake.url, notifications=True))
        add_connector(database, keys, "https://cd93.example.org/relais", name="iodas-cd93", organisation="CD93")
        with database.session() as session:
            for recipient in ("rgc:CD33", "rgc:CD93", "cssi"):
                enqueue(
                    session,
                    topic="habilitations.revue.a_faire",
                    recipient=recipient,
                    payload={"campagne": "2026-T4"},
                    idempotency_key=f"revue:{recipient}",
                    now=clock.now,
                )
            session.commit()
        worker(database, keys, settings(tmp_path), clock).run_until_idle()

        (received,) = fake.state.received
    assert (received["type"], received["destinataire"], received["donnees"]) == (
        "habilitations.revue.a_faire",
        "rgc:CD33",
        {"campagne": "2026-T4"},
    )
    waiting = {m.recipient: (m.status, m.attempts, m.last_error) for m in messages(database) if m.status != "delivered"}
    # CD93's connector carries no notifications, and no hub channel is configured for the CSSI.
    assert waiting == {"rgc:CD93": ("pending", 0, NO_CHANNEL), "cssi": ("pending", 0, NO_CHANNEL)}


def _person(database: Database, organisation: str, role: str | None, email: str | None, etat: str = ACTIF) -> int:
    with database.session() as session:
        org = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        assert org.id is not None
        agent = Agent(organisation_id=org.id, identifiant=email or "SANS", nom="N", prenom="P", email=email, etat=etat)
        session.add(agent)
        session.flush()
        assert agent.id is not None
        if role is not None:
            debut = datetime(2026, 1, 1, tzinfo=UTC)
            session.add(Designation(organisation_id=org.id, agent_id=agent.id, role=role, debut=debut))
        session.commit()
        return agent.id


def _mail_channel(database: Database, keys: KeySet, url: str, organisation: str = "CD33") -> None:
    with database.session() as session:
        registry.create_connector(
            session,
            keys,
            name=f"alertes-{organisation.lower()}",
            organisation=organisation,
            url=url,
            events=[],
            notifications=True,
            now=datetime.now(UTC),
        )
        session.commit()


def test_a_failing_editor_s_pause_reaches_the_rgc_by_e_mail(database: Database, tmp_path: Path) -> None:
    """The département hears that its connector broke, by a channel that does not depend on it."""
    keys, clock = keyset(), Clock()
    config = settings(tmp_path, connector_pause_after_failures=2, notification_from="relais@hub.example.org")
    with editor({}) as fake, FakeSmtp() as smtp:
        fake.state.keys.update(add_connector(database, keys, fake.url))
        _mail_channel(database, keys, smtp.url)
        _person(database, "CD33", RGC_TITULAIRE, "titulaire@cd33.example.org")
        _person(database, "CD33", RGC_SUPPLEANT, "suppleant@cd33.example.org")
        _person(database, "CD33", RGC_SUPPLEANT, "parti@cd33.example.org", etat="revoque")
        _person(database, "CD33", RSSI, "rssi@cd33.example.org")
        publish(database, 2, now=clock.now)
        fake.switches.fail = 100
        mailer = SmtpSender(config)
        runner = Worker(database, keys, config, WebhookSender(), audit=JournalRecorder(), mailer=mailer, clock=clock)
        runner.run_until_idle()

        ((sender, recipients, data),) = smtp.messages
    assert sender == "relais@hub.example.org"
    assert recipients == ["suppleant@cd33.example.org", "titulaire@cd33.example.org"]
    mail = message_from_bytes(data, policy=policy.default)
    assert mail["Subject"] == "[Relais] Connecteur suspendu après des échecs répétés"
    assert "connecteur : solis-cd33" in mail.get_body().get_content()  # type: ignore[union-attr]
    statuses = {m.recipient: m.status for m in messages(database)}
    assert statuses["rgc:CD33"] == "delivered"


def test_a_notification_for_someone_without_an_address_waits_visibly(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    with FakeSmtp() as smtp:
        add_connector(database, keys, "https://solis.example.org/relais")
        _mail_channel(database, keys, smtp.url)
        agent_id = _person(database, "CD33", None, None)
        with database.session() as session:
            enqueue(
                session,
                topic="habilitations.inactivite.avertissement",
                recipient=f"agent:{agent_id}",
                payload={"joursRestants": 15},
                idempotency_key="inactivite:1",
                now=clock.now,
            )
            session.commit()
        config = settings(tmp_path)
        runner = Worker(
            database, keys, config, WebhookSender(), audit=JournalRecorder(), mailer=SmtpSender(config), clock=clock
        )
        runner.run_until_idle()
        assert smtp.messages == []
    (message,) = messages(database)
    assert (message.status, message.attempts, message.last_error) == ("pending", 0, NO_ADDRESS)
