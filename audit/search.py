"""Search the audit journal: filters, the security officer's visibility, cursor paging, totals.

An usager is searched for by what the journal holds of them: internal usager ids and NIR
blind indexes (``UsagerCible``). The caller resolves the NIR or numéro France Travail it was
given to those keys, through the parcours tables (the audit domain does not read them); a
search by NIR for someone Relais does not know still finds who looked for that NIR. The NIR
itself is never stored nor returned.

Results come newest first and are paged by event id (``id`` is assigned at insert and never
changes; leaf indices may be assigned later by the journal's sequencer). A cursor is the last
id seen, so a page never repeats or skips an event even while new ones are appended. A filter
or cursor that cannot be used raises ``AuditRefused`` (``RefusalKind.INVALID``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_
from sqlmodel import Session, col, select

from audit import checkpoints
from audit.export import export_records
from audit.models import AuditEvent
from audit.refusals import AuditRefused, RefusalKind
from relais.core.config import Settings

DECISIONS = ("allowed", "denied", "error")
EXPORT_CHUNK = 1000


@dataclass(frozen=True)
class UsagerCible:
    """What the journal knows an usager by: internal ids and NIR blind indexes."""

    usager_ids: tuple[str, ...]
    nir_indexes: tuple[str, ...]

    @property
    def reference(self) -> str | None:
        """What an audit event may name the usager by: its internal id, never the NIR."""
        return f"usager:{self.usager_ids[0]}" if self.usager_ids else None


@dataclass(frozen=True)
class Filters:
    usager: UsagerCible | None = None
    agent_id: int | None = None
    agent_identifiant: str | None = None
    organisation: str | None = None
    client_id: str | None = None
    operation: str | None = None
    decision: str | None = None
    debut: datetime | None = None
    fin: datetime | None = None
    # Organisation codes the searcher may see; None means every organisation (CSSI, operator).
    visible: frozenset[str] | None = field(default=None)

    def names(self) -> list[str]:
        """Which filters were used (their names only), for the search's own audit event."""
        used = [
            name
            for name in (
                "usager",
                "agent_id",
                "agent_identifiant",
                "organisation",
                "client_id",
                "operation",
                "decision",
                "debut",
                "fin",
            )
            if getattr(self, name) is not None
        ]
        return used

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.visible is not None:
            conditions.append(col(AuditEvent.organisation).in_(sorted(self.visible)))
        if self.usager is not None:
            alternatives: list[ColumnElement[bool]] = []
            if self.usager.usager_ids:
                alternatives.append(col(AuditEvent.usager_id).in_(self.usager.usager_ids))
            if self.usager.nir_indexes:
                alternatives.append(col(AuditEvent.usager_nir_index).in_(self.usager.nir_indexes))
            conditions.append(or_(*alternatives) if alternatives else false())
        if self.agent_id is not None:
            conditions.append(col(AuditEvent.agent_id) == self.agent_id)
        if self.agent_identifiant is not None:
            conditions.append(col(AuditEvent.agent_identifiant) == self.agent_identifiant)
        if self.organisation is not None:
            conditions.append(col(AuditEvent.organisation) == self.organisation)
        if self.client_id is not None:
            conditions.append(col(AuditEvent.client_id) == self.client_id)
        if self.operation is not None:
            conditions.append(col(AuditEvent.operation) == self.operation)
        if self.decision is not None:
            conditions.append(col(AuditEvent.decision) == self.decision)
        if self.debut is not None:
            conditions.append(col(AuditEvent.occurred_at) >= self.debut)
        if self.fin is not None:
            conditions.append(col(AuditEvent.occurred_at) < self.fin)
        return conditions


@dataclass(frozen=True)
class Page:
    events: Sequence[AuditEvent]
    total: int
    next_cursor: str | None


def encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_cursor() from None
    prefix, _, number = raw.partition(":")
    if prefix != "id" or not number.isdigit() or len(number) > 18:
        raise _invalid_cursor()
    return int(number)


def _invalid_cursor() -> AuditRefused:
    return AuditRefused(
        RefusalKind.INVALID, "CURSEUR_INVALIDE", "curseur invalide : reprendre la recherche depuis le début"
    )


def search(session: Session, filters: Filters, *, limit: int, cursor: str | None = None) -> Page:
    """One page of matching events, newest first, with the total count of matches."""
    conditions = filters.conditions()
    query = select(AuditEvent).where(*conditions)
    if cursor is not None:
        query = query.where(col(AuditEvent.id) < decode_cursor(cursor))
    events = session.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit + 1)).all()
    total = session.exec(select(func.count()).select_from(AuditEvent).where(*conditions)).one()
    more = len(events) > limit
    events = events[:limit]
    next_cursor = encode_cursor(events[-1].id) if more and events and events[-1].id is not None else None
    return Page(events, int(total), next_cursor)


def iter_events(session: Session, filters: Filters, *, chunk: int = EXPORT_CHUNK) -> Iterator[AuditEvent]:
    """Every matching event in journal order (oldest first), read in chunks by id."""
    conditions = filters.conditions()
    last = 0
    while True:
        rows = session.exec(
            select(AuditEvent).where(*conditions, col(AuditEvent.id) > last).order_by(col(AuditEvent.id)).limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id or last
        if len(rows) < chunk:
            return


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


def event_json(event: AuditEvent) -> dict[str, Any]:
    """An event as the audit API shows it (every field but the NIR, which is never stored)."""
    return {
        "id": event.id,
        "seq": event.seq,
        "horodatage": _iso(event.occurred_at),
        "requestId": event.request_id,
        "canal": event.channel,
        "operation": event.operation,
        "clientId": event.client_id,
        "organisation": event.organisation,
        "agent": {
            "id": event.agent_id,
            "identifiant": event.agent_identifiant,
            "nom": event.agent_nom,
            "prenom": event.agent_prenom,
        },
        "habilitationId": event.habilitation_id,
        "acr": event.acr,
        "scopes": event.scopes.split() if event.scopes else [],
        "finalite": event.purpose,
        "origineDonnees": event.data_origin,
        "requeteAmont": event.upstream_request_id,
        "usagerId": event.usager_id,
        "usagerIndexNir": event.usager_nir_index,
        "decision": event.decision,
        "motif": event.reason,
        "codeHttp": event.http_status,
        "cible": event.target,
        "details": event.details,
        "hash": event.hash,
    }


# Flat columns of the CSV export, in order (``details`` as JSON text).
CSV_COLUMNS = (
    "id",
    "seq",
    "horodatage",
    "requestId",
    "canal",
    "operation",
    "clientId",
    "organisation",
    "agentId",
    "agentIdentifiant",
    "agentNom",
    "agentPrenom",
    "habilitationId",
    "acr",
    "scopes",
    "finalite",
    "origineDonnees",
    "requeteAmont",
    "usagerId",
    "usagerIndexNir",
    "decision",
    "motif",
    "codeHttp",
    "cible",
    "details",
    "hash",
)


# Export -----------------------------------------------------------------------------------

# Spreadsheet formula characters: a cell starting with one is prefixed so it stays text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _csv_row(event: AuditEvent) -> list[str]:
    data = event_json(event)
    agent = data.pop("agent")
    flat = {
        **data,
        "agentId": agent["id"],
        "agentIdentifiant": agent["identifiant"],
        "agentNom": agent["nom"],
        "agentPrenom": agent["prenom"],
        "scopes": " ".join(data["scopes"]),
    }
    return [_csv_cell(flat[column]) for column in CSV_COLUMNS]


def csv_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    """The CSV export, header first, one text line per event (for reading; proofs are in JSONL)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for event in events:
        writer.writerow(_csv_row(event))
        yield flush()


def jsonl_records(session: Session, filters: Filters, *, settings: Settings, now: datetime) -> Iterator[dict[str, Any]]:
    """The JSONL export: the verifiable journal's proof-carrying records for the matching events
    (a header, the signed checkpoint, then each event with its leaf hash and inclusion proof).

    A checkpoint is signed first, in ``session``, over every event already committed, so that
    the export proves every event it holds; without anything new, the latest one serves.
    """
    checkpoint = checkpoints.checkpoint_in(session, checkpoints.signing_key(settings), now=now)
    ids = [event.id for event in iter_events(session, filters) if event.id is not None]
    return export_records(session, ids, checkpoint=checkpoint or checkpoints.latest_checkpoint(session))
