"""« Qui a consulté mon dossier » : the per-usager report answering a GDPR access request.

It lists, for one usager, every access to their data that Relais allowed: when, by which
organisation, for which purpose, through which operation and where the data came from. It
names organisations, never agents (no name, no identifier): the person is told which bodies
processed their data and why, as article 15 GDPR requires; the agents' identities stay with
the security officers, who can search the journal if a specific access must be explained.
Refused attempts are counted per organisation, not listed: nothing of the usager was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from audit.models import AuditEvent
from audit.search import Filters
from relais.core.tables import Organisation

# Calls that reach an usager's data: the partner APIs, the producer feed and the adapters.
# The audit API's own searches name the usager as their target, not as their usager.
ACCESS_CHANNELS = ("partner-api", "producer-feed", "adapter", "cli")
BATCH_AGENT = "BATCH"
MAX_ACCESS_LINES = 5000


@dataclass(frozen=True)
class Report:
    accesses: list[dict[str, Any]]
    organisations: list[dict[str, Any]]
    total: int
    truncated: bool


def who_accessed(session: Session, filters: Filters) -> Report:
    conditions = [*filters.conditions(), col(AuditEvent.channel).in_(ACCESS_CHANNELS)]
    allowed = [*conditions, col(AuditEvent.decision) == "allowed"]
    events = session.exec(
        select(AuditEvent).where(*allowed).order_by(col(AuditEvent.id)).limit(MAX_ACCESS_LINES + 1)
    ).all()
    truncated = len(events) > MAX_ACCESS_LINES
    events = events[:MAX_ACCESS_LINES]
    total = int(session.exec(select(func.count()).select_from(AuditEvent).where(*allowed)).one())
    refused_rows = session.exec(
        select(AuditEvent.organisation, func.count())
        .where(*conditions, col(AuditEvent.decision) == "denied")
        .group_by(col(AuditEvent.organisation))
    ).all()
    refused = {code: int(count) for code, count in refused_rows}
    codes = {event.organisation for event in events if event.organisation} | {code for code in refused if code}
    labels = dict(
        session.exec(select(Organisation.code, Organisation.libelle).where(col(Organisation.code).in_(codes))).all()
    )
    accesses = [
        {
            "date": _iso(event.occurred_at),
            "organisation": _organisation(event.organisation, labels),
            "finalite": event.purpose,
            "operation": event.operation,
            "accedant": "traitement" if event.agent_identifiant in (None, BATCH_AGENT) else "agent",
            "origineDonnees": event.data_origin,
        }
        for event in events
    ]
    summary: dict[str | None, dict[str, Any]] = {}
    for event in events:
        entry = summary.setdefault(
            event.organisation,
            {
                "organisation": _organisation(event.organisation, labels),
                "nombreAcces": 0,
                "premierAcces": _iso(event.occurred_at),
                "dernierAcces": None,
                "finalites": [],
                "tentativesRefusees": refused.get(event.organisation or "", 0),
            },
        )
        entry["nombreAcces"] += 1
        entry["dernierAcces"] = _iso(event.occurred_at)
        if event.purpose and event.purpose not in entry["finalites"]:
            entry["finalites"].append(event.purpose)
    for code, count in refused.items():
        if code not in summary:
            summary[code] = {
                "organisation": _organisation(code, labels),
                "nombreAcces": 0,
                "premierAcces": None,
                "dernierAcces": None,
                "finalites": [],
                "tentativesRefusees": count,
            }
    return Report(accesses, list(summary.values()), total, truncated)


def _organisation(code: str | None, labels: dict[str, str]) -> dict[str, str | None]:
    return {"code": code, "libelle": labels.get(code) if code else None}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
