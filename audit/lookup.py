"""What other domains may read of the journal: the kernel's ``AuditLookup`` port, implemented.

The habilitations domain reads the journal to prepare a review campaign (when each scope of
a grant was last used, which security overrides an organisation underwent). It receives a
``JournalLookup`` as an ``AuditLookup`` and never sees the journal's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, type_coerce
from sqlmodel import Session, UTCDateTime, col, select

from audit.journal import decision_for
from audit.models import AuditEvent
from relais.core.auditing import AuditedAction

if TYPE_CHECKING:
    from relais.core.auditing import AuditLookup

ALLOWED = decision_for(200)


class JournalLookup:
    """Reads of the journal for other domains, in the caller's session."""

    def last_use_by_scopes(self, session: Session, *, habilitation_id: str) -> dict[str, datetime]:
        """For each ``scopes`` value (space-separated) used under the habilitation, when it was
        last used in an allowed call."""
        # Grouped in the database: a busy agent's year of calls is a handful of rows here. The
        # maximum keeps the column's type, so SQLite gives it back aware like the column.
        rows = session.exec(
            select(AuditEvent.scopes, type_coerce(func.max(AuditEvent.occurred_at), UTCDateTime()))
            .where(
                AuditEvent.habilitation_id == habilitation_id,
                AuditEvent.decision == ALLOWED,
                col(AuditEvent.scopes).is_not(None),
            )
            .group_by(col(AuditEvent.scopes))
        ).all()
        return {scopes: occurred_at for scopes, occurred_at in rows if scopes is not None}

    def events_since(
        self, session: Session, *, organisation: str, operations: Sequence[str], since: datetime | None
    ) -> list[AuditedAction]:
        """Events of ``operations`` for an organisation after ``since`` (all when None), oldest first."""
        query = select(AuditEvent).where(
            AuditEvent.organisation == organisation,
            col(AuditEvent.operation).in_(list(operations)),
        )
        if since is not None:
            query = query.where(AuditEvent.occurred_at > since)
        return [_action(event) for event in session.exec(query.order_by(col(AuditEvent.seq))).all()]


def _action(event: AuditEvent) -> AuditedAction:
    return AuditedAction(
        seq=event.seq,
        occurred_at=event.occurred_at,
        operation=event.operation,
        agent_id=event.agent_id,
        agent_identifiant=event.agent_identifiant,
        target=event.target,
        reason=event.reason,
        details=event.details,
    )


if TYPE_CHECKING:
    # The port is structural: this line makes mypy hold the class to it.
    _port: AuditLookup = JournalLookup()
