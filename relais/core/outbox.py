"""The durable outbox: messages written in the same transaction as the change that causes them.

Notifications (inactivity warnings, RGC notices, security alerts) and domain events for the
editors' connectors are rows here first; a worker delivers them afterwards. A message is
keyed by an idempotency key, so that a sweep run twice, or a retried request, never queues
the same message twice.

A domain tells a fact once, as a ``DomainEvent`` (``publish``), without knowing who hears of
it; whoever routes facts to recipients (the organisations' connectors, adapters/outbound)
subscribes at start-up and writes the messages in the same session, so that they commit or
roll back with the change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, select

from relais.core.tables import new_id, utcnow

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"  # will be retried at ``next_attempt_at``
DEAD = "dead"  # gave up after the configured number of attempts; visible and replayable
# A people's notification with no channel or address to send it by: the console inbox has it.
SKIPPED = "skipped"


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    # What happened, e.g. "habilitations.inactivite.avertissement" or "orientation.decidee".
    topic: str = Field(max_length=64, index=True)
    # Who must hear of it: "agent:<id>", "rgc:<organisation code>", "cssi", "connecteur:<name>"...
    recipient: str = Field(max_length=255, index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    idempotency_key: str = Field(unique=True, max_length=255)
    status: str = Field(default=PENDING, max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = None


def enqueue(
    session: Session,
    *,
    topic: str,
    recipient: str,
    payload: dict[str, Any],
    idempotency_key: str,
    now: datetime,
    organisation_id: int | None = None,
) -> OutboxMessage:
    """Queue a message in ``session`` (committed with the caller's work), once per key."""
    existing = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)).first()
    if existing is not None:
        return existing
    message = OutboxMessage(
        created_at=now,
        topic=topic,
        recipient=recipient,
        organisation_id=organisation_id,
        payload=payload,
        idempotency_key=idempotency_key,
        next_attempt_at=now,
    )
    session.add(message)
    session.flush()
    return message


# Domain events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainEvent:
    """One fact, told once by the domain where it happens."""

    # What happened, e.g. "orientation.decidee".
    type: str
    # The organisations the fact concerns, without repeats.
    organisation_ids: tuple[int, ...]
    # Identifiers, states, codes and dates: never personal data.
    data: Mapping[str, Any]
    occurred_at: datetime


EventSubscriber = Callable[[Session, DomainEvent], object]
_subscribers: list[EventSubscriber] = []


def subscribe(subscriber: EventSubscriber) -> None:
    """Hand every domain event published from now on to ``subscriber`` too (once, however often asked)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def publish(session: Session, event: DomainEvent) -> None:
    """Tell ``event`` to the subscribers, in ``session``: it commits or rolls back with the change."""
    for subscriber in tuple(_subscribers):
        subscriber(session, event)
