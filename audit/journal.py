"""Append-only, hash-chained journal of API calls.

Each event's hash covers its own canonical content and the previous event's hash, so
altering, removing or reordering an event breaks every hash after it. The chain tip lives
in a single ``audit_chain_head`` row: locking it orders concurrent appends on PostgreSQL
(SQLite already serialises writers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from relais.context import AuditDraft
from relais.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64

# The fields a hash covers, in a fixed order: adding a field later means a new version.
_HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "request_id",
    "channel",
    "operation",
    "client_id",
    "organisation",
    "agent_nom",
    "agent_prenom",
    "agent_identifiant",
    "usager_id",
    "usager_nir_index",
    "decision",
    "reason",
    "http_status",
)
# Added with the habilitations (issue #4): hashed only when one is set, so that events
# written before them keep their hash.
_EXTENDED_FIELDS = (
    "agent_id",
    "habilitation_id",
    "acr",
    "scopes",
    "purpose",
    "data_origin",
    "upstream_request_id",
    "target",
    "details",
)


def event_hash(event: AuditEvent, prev_hash: str) -> str:
    content = {name: getattr(event, name) for name in _HASHED_FIELDS}
    content["occurred_at"] = event.occurred_at.isoformat(timespec="microseconds")
    if any(getattr(event, name) is not None for name in _EXTENDED_FIELDS):
        content.update({name: getattr(event, name) for name in _EXTENDED_FIELDS})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def decision_for(status: int) -> str:
    if status < 400:
        return "allowed"
    if status >= 500:
        return "error"
    return "denied"


def append_event(
    session: Session,
    draft: AuditDraft,
    *,
    request_id: str,
    http_status: int,
    occurred_at: datetime,
) -> AuditEvent:
    """Add the event to ``session``; the caller commits it with the request's own work."""
    head = session.exec(select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()).one()
    event = AuditEvent(
        seq=head.seq + 1,
        occurred_at=occurred_at,
        request_id=request_id,
        channel=draft.channel,
        operation=draft.operation,
        client_id=draft.client_id,
        organisation=draft.organisation,
        agent_nom=draft.agent_nom,
        agent_prenom=draft.agent_prenom,
        agent_identifiant=draft.agent_identifiant,
        usager_id=draft.usager_id,
        usager_nir_index=draft.usager_nir_index,
        decision=decision_for(http_status),
        reason=draft.reason,
        http_status=http_status,
        **{name: getattr(draft, name) for name in _EXTENDED_FIELDS},
        prev_hash=head.hash,
        hash="",
    )
    event.hash = event_hash(event, head.hash)
    head.seq = event.seq
    head.hash = event.hash
    session.add(event)
    session.add(head)
    return event


@dataclass(frozen=True)
class ChainReport:
    events: int
    first_broken_seq: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def verify_chain(events: Iterable[AuditEvent], head: AuditChainHead | None = None) -> ChainReport:
    """Recompute the chain and report the first event that does not fit."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    for event in events:
        count += 1
        if event.seq != expected_seq:
            return ChainReport(count, event.seq, f"séquence {expected_seq} attendue")
        if event.prev_hash != prev_hash:
            return ChainReport(count, event.seq, "chaînage rompu (hash précédent)")
        if event_hash(event, prev_hash) != event.hash:
            return ChainReport(count, event.seq, "contenu modifié")
        prev_hash = event.hash
        expected_seq += 1
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return ChainReport(count, count + 1, "événements manquants en fin de journal")
    return ChainReport(count, None, None)


def verify_database(session: Session) -> ChainReport:
    events = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    head = session.get(AuditChainHead, 1)
    return verify_chain(events, head)
