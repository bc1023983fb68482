"""Security overrides: an agent or a grant blocked by the CSSI or the hub operator.

A block notifies the organisation's RGC through the outbox and is flagged for the next
review campaign, which reads the blocks back from the audit journal (through the
``AuditLookup`` port: the journal's tables are the audit domain's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from relais.core.auditing import AuditedAction, AuditLookup
from relais.core.outbox import enqueue
from relais.core.tables import Organisation

# The operations of a security override (their events carry ``details.override``).
BLOCK_OPERATIONS = ("habilitations.agent.bloquer", "habilitations.habilitation.bloquer")
# Outbox topic of the RGC's notice.
TOPIC_OVERRIDE = "habilitations.securite.blocage"


def notify_rgc(
    session: Session, organisation: Organisation, payload: dict[str, Any], *, idempotency_key: str, now: datetime
) -> None:
    """Tell the organisation's RGC that one of its identities or grants was blocked."""
    enqueue(
        session,
        topic=TOPIC_OVERRIDE,
        recipient=f"rgc:{organisation.code}",
        payload=payload,
        idempotency_key=idempotency_key,
        now=now,
        organisation_id=organisation.id,
    )


def security_overrides(
    session: Session, organisation_code: str, since: datetime | None, *, lookup: AuditLookup
) -> list[AuditedAction]:
    """Security overrides on an organisation's identities and grants since a date (all when
    ``since`` is None), oldest first: the events a review campaign flags."""
    return lookup.events_since(session, organisation=organisation_code, operations=BLOCK_OPERATIONS, since=since)
