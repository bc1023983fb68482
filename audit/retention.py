"""Retention: event payloads older than ``RELAIS_AUDIT_RETENTION_DAYS`` are deleted, their
leaves and the checkpoints stay, so the journal still verifies after a purge.

A purge always covers a prefix of the tree, leaves [previous end, new end): it stops at the
first leaf whose event is still within retention. Before deleting, it signs a checkpoint
covering every purged leaf, then records a signed ``audit_purge`` row; the database trigger
lets an event row go only when such a purge covers its leaf, and ``relais audit verify``
counts the purged payloads and refuses a purge whose signature does not check. The purge is
itself written to the journal (operation ``audit.purge``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlmodel import col

from audit.checkpoints import checkpoint_in, key_id, latest_checkpoint, purge_note, sign, signing_key
from audit.journal import append_event
from audit.models import AuditEvent, AuditLeaf, AuditPurge
from relais.core.auditing import AuditDraft
from relais.core.config import Settings
from relais.core.db import Database


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    leaf_end: int
    events_deleted: int
    purge_id: int | None


def purge_expired(database: Database, settings: Settings, *, now: datetime) -> PurgeResult:
    """Delete the payloads of events older than the retention period (one transaction)."""
    cutoff = now - timedelta(days=settings.audit_retention_days)
    private = signing_key(settings)
    with database.transaction() as session:
        checkpoint = checkpoint_in(session, private, now=now) or latest_checkpoint(session)
        start = int(session.scalar(select(func.coalesce(func.max(AuditPurge.leaf_end), 0))) or 0)
        if checkpoint is None or checkpoint.tree_size <= start:
            return PurgeResult(cutoff, start, 0, None)
        first_kept = session.scalar(
            select(func.min(AuditLeaf.leaf_index))
            .join(AuditEvent, col(AuditEvent.id) == col(AuditLeaf.event_id))
            .where(col(AuditLeaf.leaf_index) >= start, col(AuditEvent.occurred_at) >= cutoff)
        )
        end = min(checkpoint.tree_size, first_kept if first_kept is not None else checkpoint.tree_size)
        if end <= start:
            return PurgeResult(cutoff, start, 0, None)
        in_range = select(col(AuditLeaf.event_id)).where(
            col(AuditLeaf.leaf_index) >= start, col(AuditLeaf.leaf_index) < end
        )
        count = int(
            session.scalar(select(func.count()).select_from(AuditEvent).where(col(AuditEvent.id).in_(in_range))) or 0
        )
        assert checkpoint.id is not None
        purge = AuditPurge(
            purged_at=now,
            cutoff=cutoff,
            leaf_end=end,
            events_deleted=count,
            checkpoint_id=checkpoint.id,
            key_id=key_id(private.public_key()),
            signature=sign(private, purge_note(end, cutoff, now, checkpoint.id)),
        )
        session.add(purge)
        session.flush()
        session.execute(
            delete(AuditEvent).where(col(AuditEvent.id).in_(in_range)).execution_options(synchronize_session=False)
        )
        draft = AuditDraft(
            channel="cli",
            operation="audit.purge",
            target=f"audit_purge:{purge.id}",
            details={"feuilles": [start, end], "evenements": count, "retention_jours": settings.audit_retention_days},
        )
        append_event(session, draft, request_id=uuid.uuid4().hex, http_status=200, occurred_at=now)
        return PurgeResult(cutoff, end, count, purge.id)
