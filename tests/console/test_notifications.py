"""The console inbox: each person reads and marks their own notifications, no one else's."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

from sqlmodel import select

from audit.models import AuditEvent
from habilitations.notification_models import Notification
from relais.core.outbox import enqueue
from tests.console.test_console import agent_named, login
from tests.support.hub import Hub

WARNING = "habilitations.inactivite.avertissement"


def _warn(hub: Hub, recipient: str, agent_id: int, key: str) -> None:
    # As the inactivity sweep queues it, a minute after the personas logged in.
    with hub.services.database.transaction() as session:
        enqueue(
            session,
            topic=WARNING,
            recipient=recipient,
            payload={
                "agent_id": agent_id,
                "organisation": "CD33",
                "jours_restants": 15,
                "seuil": "J-15",
                "suspension_le": "2027-01-15",
            },
            idempotency_key=key,
            now=hub.clock.now + timedelta(minutes=1),
        )


def _copies(hub: Hub, agent_id: int) -> list[Notification]:
    with hub.services.database.session() as session:
        return list(session.exec(select(Notification).where(Notification.agent_id == agent_id)).all())


def test_each_person_sees_and_marks_only_their_own_notifications(console: Hub) -> None:
    login(console, "rssi-cd33")  # provisions the RSSI, who must see none of the RGC's mail
    rssi = agent_named(console, "CD33", "RSSI-CD33")
    csrf = login(console, "rgc-cd33")
    rgc = agent_named(console, "CD33", "RGC-CD33")
    worker = agent_named(console, "CD33", "AGT-7")
    _warn(console, "rgc:CD33", worker, "rgc-warning")
    _warn(console, f"agent:{worker}", worker, "agent-warning")

    # Every page's menu says how many wait, before the inbox is opened.
    home = console.client.get("/console/")
    assert home.status_code == 200 and "(1 non lue)" in unescape(home.text)

    inbox = console.client.get("/console/notifications")
    assert inbox.status_code == 200
    text = unescape(inbox.text)
    assert 'href="/console/notifications"' in text  # in the menu of every role
    assert "compte suspendu le vendredi 15 janvier 2027 sans activité d'ici là" in text
    assert "Le compte Relais d'Agent AGT-7 (AGT-7, CD33) n'a eu aucune activité" in text
    assert "Non lue" in text and "1 non lue" in text
    assert f'href="/console/habilitations/agents/{worker}"' in text
    # The agent's own copy is theirs alone.
    assert "Votre accès à Relais" not in text
    (mine,) = _copies(console, rgc)
    (theirs,) = _copies(console, worker)

    # Another person's notification: refused as unknown, and left unread.
    refused = console.client.post(f"/console/notifications/{theirs.id}/lu", data={"csrf": csrf})
    assert refused.status_code == 404 and "Notification inconnue" in refused.text
    assert _copies(console, worker)[0].read_at is None
    # A form without the session's CSRF token changes nothing either.
    forged = console.client.post(f"/console/notifications/{mine.id}/lu", data={})
    assert forged.status_code == 403 and _copies(console, rgc)[0].read_at is None

    marked = console.client.post(f"/console/notifications/{mine.id}/lu", data={"csrf": csrf})
    assert marked.status_code == 200 and "Notification marquée comme lue" in marked.text
    assert "Non lue" not in marked.text and "toutes lues" in marked.text
    assert _copies(console, rgc)[0].read_at is not None
    assert "non lue)" not in unescape(console.client.get("/console/").text)

    login(console, "rssi-cd33")
    other = console.client.get("/console/notifications")
    assert other.status_code == 200 and "Aucune notification" in other.text
    assert "compte suspendu" not in other.text and _copies(console, rssi) == []

    with console.services.database.session() as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.operation == "console.notifications.lu").order_by(AuditEvent.seq)
        ).all()
    assert [(e.http_status, e.agent_id) for e in events] == [(404, rgc), (403, rgc), (200, rgc)]
