"""The console inbox: who a notification reaches, one copy per person, read and marked by them.

Notifications are queued in the outbox addressed to a person (``agent:<id>``) or to a role of
an organisation (``rgc:<code>``, ``rssi:<code>``) or of the hub (``cssi``). Filing resolves the
role to the people who held it **when the notification was raised** (a later RGC does not
inherit their predecessor's mail) and writes each one a copy, already worded (the wording is
the outbound adapter's, ``adapters.outbound.notices``, the same for the inbox and the e-mail).

Filing is idempotent per outbox message, and safe from two processes at once: the marker row
is written in a savepoint, and whoever comes second finds it there and files nothing.
A person reads and marks only their own copies: anyone else's is "unknown" to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from habilitations.lookups import in_force, utc
from habilitations.models import CSSI, HUMAIN, RGC_SUPPLEANT, RGC_TITULAIRE, RSSI, Agent, Designation
from habilitations.notification_models import Notification, NotificationFiling
from habilitations.refusals import HabilitationRefused
from habilitations.roles import Principal
from relais.core.outbox import OutboxMessage
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

# Recipient kinds that are people (the others, "connecteur:<name>", are editors' software).
ROLES_OF_RECIPIENT = {"rgc": (RGC_TITULAIRE, RGC_SUPPLEANT), "rssi": (RSSI,), "cssi": (CSSI,)}
# How many outbox messages one filing pass takes at most (the next pass takes the rest).
FILING_BATCH = 500
INBOX_LIMIT = 200


@dataclass(frozen=True)
class Wording:
    """A notification as people read it, in French."""

    subject: str
    body: str
    link: str


def is_for_people(recipient: str) -> bool:
    kind, _, rest = recipient.partition(":")
    return (kind == "agent" and rest.isdigit()) or (kind in ("rgc", "rssi") and bool(rest)) or recipient == "cssi"


def people_for(session: Session, recipient: str, at: datetime) -> list[int]:
    """The agents a notification addressed to ``recipient`` reaches, as the roles stood ``at``."""
    kind, _, rest = recipient.partition(":")
    if kind == "agent":
        agent = session.get(Agent, int(rest)) if rest.isdigit() else None
        return [agent.id] if agent is not None and agent.id is not None and agent.type == HUMAIN else []
    roles = ROLES_OF_RECIPIENT.get(kind)
    if roles is None:
        return []
    query = select(Designation).where(col(Designation.role).in_(roles))
    if kind != "cssi":
        organisation = session.exec(select(Organisation).where(Organisation.code == rest)).first()
        if organisation is None:
            return []
        query = query.where(Designation.organisation_id == organisation.id)
    moment = utc(at)
    return sorted({d.agent_id for d in session.exec(query).all() if in_force(d, moment)})


def unfiled(session: Session, limit: int = FILING_BATCH) -> list[OutboxMessage]:
    """People's notifications of the outbox not filed in the inboxes yet, oldest first."""
    query = (
        select(OutboxMessage)
        .outerjoin(NotificationFiling, col(NotificationFiling.message_id) == col(OutboxMessage.id))
        .where(
            col(NotificationFiling.message_id).is_(None),
            or_(
                col(OutboxMessage.recipient).startswith("agent:"),
                col(OutboxMessage.recipient).startswith("rgc:"),
                col(OutboxMessage.recipient).startswith("rssi:"),
                OutboxMessage.recipient == "cssi",
            ),
        )
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
        .limit(limit)
    )
    return list(session.exec(query).all())


def is_filed(session: Session, message_id: str) -> bool:
    return session.get(NotificationFiling, message_id) is not None


def file_message(
    session: Session, message: OutboxMessage, wording: Wording, now: datetime, *, besides: int | None = None
) -> int:
    """Give each person ``message`` reaches their copy, once; how many copies this call wrote.

    ``besides`` is an agent who has a copy of their own worded for them (an RGC warned of their
    own inactivity is not also told about themselves as "an agent"). The caller commits. A
    message that reaches no one is marked filed all the same, so that it is not looked at again.
    """
    if not is_for_people(message.recipient) or is_filed(session, message.id):
        return 0
    people = [p for p in people_for(session, message.recipient, message.created_at) if p != besides]
    try:
        with session.begin_nested():
            session.add(NotificationFiling(message_id=message.id, filed_at=now, recipients=len(people)))
            for agent_id in people:
                session.add(
                    Notification(
                        agent_id=agent_id,
                        message_id=message.id,
                        topic=message.topic,
                        subject=wording.subject[:255],
                        body=wording.body,
                        link=wording.link[:2048],
                        created_at=message.created_at,
                    )
                )
    except IntegrityError:
        # Another process filed it meanwhile: its copies stand.
        return 0
    return len(people)


def inbox(session: Session, agent_id: int, limit: int = INBOX_LIMIT) -> list[Notification]:
    """The person's notifications, newest first."""
    return list(
        session.exec(
            select(Notification)
            .where(Notification.agent_id == agent_id)
            .order_by(col(Notification.created_at).desc(), col(Notification.id))
            .limit(limit)
        ).all()
    )


def unread_count(session: Session, agent_id: int) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(Notification)
            .where(Notification.agent_id == agent_id, col(Notification.read_at).is_(None))
        ).one()
    )


def mark_read(session: Session, principal: Principal, notification_id: str, now: datetime) -> Notification:
    """Mark one of the person's own notifications as read (again: nothing changes).

    Someone else's notification is refused as unknown: its existence is not confirmed.
    """
    notification = session.get(Notification, notification_id)
    if notification is None or principal.agent_id is None or notification.agent_id != principal.agent_id:
        raise HabilitationRefused(RefusalKind.UNKNOWN, "NOTIFICATION_INCONNUE", "Notification inconnue")
    if notification.read_at is None:
        notification.read_at = now
        session.add(notification)
    return notification
