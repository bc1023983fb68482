"""What an audit event says, as the code that acts fills it in.

The audit domain turns an ``AuditDraft`` into a journal event; other domains and adapters
fill drafts (or receive one to fill) without importing the audit domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlmodel import Session


@dataclass
class AuditDraft:
    """What the audit event of this request will say, filled in as the request goes."""

    channel: str
    operation: str
    client_id: str | None = None
    organisation: str | None = None
    agent_nom: str | None = None
    agent_prenom: str | None = None
    agent_identifiant: str | None = None
    usager_id: str | None = None
    usager_nir_index: str | None = None
    # Set when the request is refused for a reason the status alone does not tell.
    reason: str | None = None
    agent_id: int | None = None
    habilitation_id: str | None = None
    acr: str | None = None
    scopes: str | None = None
    purpose: str | None = None
    data_origin: str | None = None
    upstream_request_id: str | None = None
    target: str | None = None
    details: dict[str, Any] | None = None


class AuditRecorder(Protocol):
    """Writes one audit event in the caller's unit of work (the audit domain implements it).

    Domains that act on their own (a lifecycle sweep, a campaign closing, a connector's
    delivery) receive a recorder as an argument instead of importing the audit domain; the
    event commits or rolls back with the work it describes.
    """

    def record(
        self,
        session: Session,
        draft: AuditDraft,
        *,
        request_id: str,
        http_status: int,
        occurred_at: datetime,
    ) -> None: ...


class AuditLookup(Protocol):
    """What other domains may read of the journal, without knowing its tables."""

    def last_use_by_scopes(self, session: Session, *, habilitation_id: str) -> dict[str, datetime]:
        """When each scope set (space-separated) was last used, allowed, under a habilitation."""
        ...

    def events_since(
        self, session: Session, *, organisation: str, operations: Sequence[str], since: datetime | None
    ) -> list[AuditedAction]:
        """Events of ``operations`` for an organisation, oldest first."""
        ...


@dataclass(frozen=True)
class AuditedAction:
    """One journal event as other domains see it."""

    seq: int
    occurred_at: datetime
    operation: str
    agent_id: int | None
    agent_identifiant: str | None
    target: str | None
    reason: str | None
    details: dict[str, Any] | None
