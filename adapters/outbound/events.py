"""Domain events to the organisations' connectors: one outbox message per subscribed connector.

A domain publishes each fact once (``relais.core.outbox.publish``), naming the organisations
it concerns; ``install`` subscribes ``deliver_event`` to them. For every connector of those
organisations subscribed to the event type, it writes one outbox message carrying the
editor-facing envelope (specs/editor-webhook-v1.yaml) with its own event id, in the session
of the change: if the change is rolled back, so are its messages; if it commits, the worker
delivers them.

The fan-out runs when the fact is published, not in the worker: what waits for an editor (and
what ``relais connecteurs`` and the API show of it) is there as soon as the change commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from adapters.outbound.models import FORMAT_V1, Connector
from relais.core import outbox
from relais.core.outbox import DomainEvent, enqueue
from relais.core.tables import Organisation, new_id


def install() -> None:
    """Route the domains' events to the connectors (composition roots call it; idempotent)."""
    outbox.subscribe(deliver_event)


def deliver_event(session: Session, event: DomainEvent) -> int:
    """The subscriber: queue ``event`` for the connectors that want it; how many messages."""
    return publish(session, event.organisation_ids, event.type, event.data, event.occurred_at)


def publish(
    session: Session,
    organisation_ids: Iterable[int | None],
    event_type: str,
    data: Mapping[str, Any],
    now: datetime,
) -> int:
    """Queue ``event_type`` for every subscribed connector of these organisations; how many."""
    wanted = {organisation_id for organisation_id in organisation_ids if organisation_id is not None}
    if not wanted:
        return 0
    connectors = session.exec(
        select(Connector).where(col(Connector.organisation_id).in_(wanted)).order_by(col(Connector.id))
    ).all()
    queued = 0
    for connector in connectors:
        if not connector.wants(event_type):
            continue
        organisation = session.get(Organisation, connector.organisation_id)
        event_id = new_id()
        enqueue(
            session,
            topic=event_type,
            recipient=connector.recipient,
            payload={
                "id": event_id,
                "type": event_type,
                "format": FORMAT_V1,
                "date": now.astimezone(UTC).isoformat(),
                "organisation": organisation.code if organisation is not None else None,
                "donnees": dict(data),
            },
            idempotency_key=f"evenement:{event_id}",
            now=now,
            organisation_id=connector.organisation_id,
        )
        queued += 1
    return queued
