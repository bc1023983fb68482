"""What a connector delivered, what waits, what failed: read and replay (API and CLI).

A replay puts a message back in the queue, due now, with its attempt count reset and the
same event id: an editor that already has it acknowledges it without processing it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, or_, select

from adapters.outbound.models import Connector, DeliveryAttempt
from relais.core.outbox import DEAD, DELIVERED, FAILED, PENDING, OutboxMessage

STATUSES = (PENDING, FAILED, DELIVERED, DEAD)
# Statuses a worker still acts on.
WAITING = (PENDING, FAILED)
# The contract's words for the outbox statuses.
STATUT = {PENDING: "EN_ATTENTE", FAILED: "EN_ECHEC", DELIVERED: "LIVRE", DEAD: "ABANDONNE"}
STATUS_OF = {statut: status for status, statut in STATUT.items()}
MAX_REPLAY = 10_000


@dataclass(frozen=True)
class Page:
    messages: list[OutboxMessage]
    total: int


def counts(session: Session, connector: Connector) -> dict[str, int]:
    rows = session.exec(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.recipient == connector.recipient)
        .group_by(col(OutboxMessage.status))
    ).all()
    found = {status: int(count) for status, count in rows}
    return {STATUT[status]: found.get(status, 0) for status in STATUSES}


def last_delivery(session: Session, connector: Connector) -> datetime | None:
    value = session.exec(
        select(func.max(OutboxMessage.delivered_at)).where(OutboxMessage.recipient == connector.recipient)
    ).one()
    return value if isinstance(value, datetime) else None


def messages(
    session: Session,
    connector: Connector,
    *,
    statuses: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page:
    """The connector's messages, newest first."""
    query = select(OutboxMessage).where(OutboxMessage.recipient == connector.recipient)
    if statuses:
        query = query.where(col(OutboxMessage.status).in_(statuses))
    if since is not None:
        query = query.where(OutboxMessage.created_at >= since)
    if until is not None:
        query = query.where(OutboxMessage.created_at <= until)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    page = session.exec(
        query.order_by(col(OutboxMessage.created_at).desc(), col(OutboxMessage.id).desc()).offset(offset).limit(limit)
    ).all()
    return Page(list(page), int(total))


def message(session: Session, connector: Connector, event_id: str, *, lock: bool = False) -> OutboxMessage | None:
    """One message of this connector, by its event id (or its outbox id)."""
    query = select(OutboxMessage).where(
        OutboxMessage.recipient == connector.recipient,
        or_(col(OutboxMessage.idempotency_key) == f"evenement:{event_id}", col(OutboxMessage.id) == event_id),
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.exec(query).first()


def attempts(session: Session, found: OutboxMessage) -> list[DeliveryAttempt]:
    return list(
        session.exec(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.message_id == found.id)
            .order_by(col(DeliveryAttempt.attempted_at), col(DeliveryAttempt.id))
        )
    )


def replay(session: Session, found: OutboxMessage, now: datetime) -> None:
    found.status = PENDING
    found.attempts = 0
    found.next_attempt_at = now
    found.last_error = None
    found.delivered_at = None
    session.add(found)


def replay_range(
    session: Session,
    connector: Connector,
    now: datetime,
    *,
    statuses: list[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Replay every message of the connector in these statuses created in [since, until]."""
    query = select(OutboxMessage).where(
        OutboxMessage.recipient == connector.recipient, col(OutboxMessage.status).in_(statuses)
    )
    if since is not None:
        query = query.where(OutboxMessage.created_at >= since)
    if until is not None:
        query = query.where(OutboxMessage.created_at <= until)
    found = session.exec(query.order_by(col(OutboxMessage.created_at)).limit(MAX_REPLAY).with_for_update()).all()
    for item in found:
        replay(session, item, now)
    return len(found)


def event_id_of(found: OutboxMessage) -> str:
    payload: dict[str, Any] = found.payload or {}
    return str(payload.get("id") or found.id)
