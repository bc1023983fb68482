"""People's notifications from the outbox reach their organisation's notification channel.

They are in the console inbox of the people they reach first; the e-mail copy reads the same
French text. Without a channel or an address nothing is left pending; a failing SMTP server is
retried a bounded number of times, then given up with the state recorded.
"""

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
from habilitations import notifications
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


def test_notifications_go_to_the_organisation_s_channel_or_are_left_to_the_inbox(
    database: Database, tmp_path: Path
) -> None:
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
    # CD93's connector carries no notifications, and no hub channel is configured for the CSSI:
    # nothing to send, and nothing pending forever (the console inbox has them).
    assert waiting == {"rgc:CD93": ("skipped", 0, NO_CHANNEL), "cssi": ("skipped", 0, NO_CHANNEL)}


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
    config = settings(
        tmp_path,
        connector_pause_after_failures=2,
        notification_from="relais@hub.example.org",
        public_url="https://relais.example.org/",
    )
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
    assert mail["Subject"] == "[Relais] Connecteur solis-cd33 suspendu après des échecs répétés"
    text = mail.get_body().get_content()  # type: ignore[union-attr]
    assert "au connecteur « solis-cd33 »" in text and "aucun n'est perdu" in text
    assert "Dans la console : https://relais.example.org/console/integration" in text
    statuses = {m.recipient: m.status for m in messages(database)}
    assert statuses["rgc:CD33"] == "delivered"


def test_a_notification_for_someone_without_an_address_is_in_their_inbox_and_not_pending(
    database: Database, tmp_path: Path
) -> None:
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
    assert (message.status, message.attempts, message.last_error) == ("skipped", 0, NO_ADDRESS)
    with database.session() as session:
        (copy,) = notifications.inbox(session, agent_id)
    assert copy.message_id == message.id and copy.read_at is None


def test_an_inactivity_warning_by_e_mail_reads_as_the_inbox_does(database: Database, tmp_path: Path) -> None:
    keys, clock = keyset(), Clock()
    config = settings(tmp_path, public_url="https://relais.example.org")
    with FakeSmtp() as smtp:
        add_connector(database, keys, "https://solis.example.org/relais")  # the organisation's editor
        _mail_channel(database, keys, smtp.url)
        agent_id = _person(database, "CD33", None, "claire.martin@cd33.example.org")
        with database.session() as session:
            agent = session.get(Agent, agent_id)
            assert agent is not None
            agent.prenom, agent.nom = "Claire", "Martin"
            session.add(agent)
            enqueue(
                session,
                topic="habilitations.inactivite.avertissement",
                recipient=f"agent:{agent_id}",
                payload={
                    "agent_id": agent_id,
                    "organisation": "CD33",
                    "jours_restants": 7,
                    "seuil": "J-7",
                    "suspension_le": "2026-12-01",
                },
                idempotency_key="inactivite:claire",
                now=clock.now,
            )
            session.commit()
        Worker(
            database, keys, config, WebhookSender(), audit=JournalRecorder(), mailer=SmtpSender(config), clock=clock
        ).run_until_idle()
        ((_, recipients, data),) = smtp.messages
    assert recipients == ["claire.martin@cd33.example.org"]
    mail = message_from_bytes(data, policy=policy.default)
    assert (
        mail["Subject"]
        == "[Relais] Votre accès à Relais sera suspendu le mardi 1er décembre 2026 sans connexion d'ici là"
    )
    text = mail.get_body().get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert text.startswith("Bonjour Claire Martin,") and "(dans 7 jours)" in text
    assert "Dans la console : https://relais.example.org/console/" in text
    with database.session() as session:
        (copy,) = notifications.inbox(session, agent_id)
    assert copy.subject == mail["Subject"].removeprefix("[Relais] ") and copy.body in text


def test_a_failing_smtp_server_is_retried_a_bounded_number_of_times_then_given_up(
    database: Database, tmp_path: Path
) -> None:
    keys, clock = keyset(), Clock()
    config = settings(tmp_path, connector_max_attempts=3)
    # Nothing listens on port 9: every attempt fails to connect.
    add_connector(database, keys, "https://solis.example.org/relais")
    _mail_channel(database, keys, "smtp://127.0.0.1:9")
    agent_id = _person(database, "CD33", None, "agent@cd33.example.org")
    with database.session() as session:
        enqueue(
            session,
            topic="habilitations.inactivite.avertissement",
            recipient=f"agent:{agent_id}",
            payload={"agent_id": agent_id, "suspension_le": "2026-12-01", "jours_restants": 7},
            idempotency_key="inactivite:smtp-hs",
            now=clock.now,
        )
        session.commit()
    runner = Worker(
        database, keys, config, WebhookSender(), audit=JournalRecorder(), mailer=SmtpSender(config), clock=clock
    )
    for _ in range(6):
        runner.run_until_idle()
        clock.advance(hours=2)
    (message,) = messages(database)
    assert (message.status, message.attempts) == ("dead", 3)
    assert message.last_error is not None and message.last_error.startswith("SMTP indisponible")
    with database.session() as session:
        assert len(notifications.inbox(session, agent_id)) == 1
