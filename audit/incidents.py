"""Security incidents: opened by the detection rules, handled by security officers.

An incident holds what fired (rule, subject, value-free summary), its evidence (audit event
ids) and a notification clock: convention art. 5 has each party inform the other's DPO at the
latest 48 hours after discovering a personal data breach, so ``echeance_notification`` is the
detection time plus ``audit_incident_notification_hours``. States move
``OUVERT → QUALIFIE → NOTIFIE → CLOS`` (closing is allowed from any open state, e.g. a false
positive), each move with its author and a comment; a refused move raises ``AuditRefused``.
While an incident is not closed, the same rule firing again on the same subject adds
evidence to it rather than opening another.

Opening queues alerts in the durable outbox, in the same transaction: one for France
Travail's CSSI and one for the security officer of the organisation concerned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from audit.incident_models import (
    CLOS,
    GRAVITES,
    NOTIFIE,
    OUVERT,
    QUALIFIE,
    TRANSITIONS,
    Incident,
    IncidentNotification,
    IncidentPreuve,
    IncidentTransition,
)
from audit.refusals import AuditRefused, RefusalKind
from relais.core.outbox import enqueue
from relais.core.tables import Organisation

ALERT_TOPIC = "audit.incident.ouvert"
# The 48-hour notification deadline passed without the incident being notified or closed.
OVERDUE_TOPIC = "audit.incident.echeance_depassee"
DETECTOR_AUTHOR = "relais:detection"


@dataclass(frozen=True)
class Opened:
    incident: Incident
    created: bool
    new_evidence: int


def open_or_extend(
    session: Session,
    *,
    rule: str,
    subject: str,
    organisation: str | None,
    summary: str,
    details: dict[str, Any],
    evidence: Iterable[int],
    now: datetime,
    notification_hours: int,
) -> Opened:
    """Open an incident for (rule, subject), or add the evidence to the one still open."""
    key = f"{rule}|{subject}"[:320]
    incident = session.exec(select(Incident).where(Incident.cle_ouverte == key).with_for_update()).first()
    created = incident is None
    if incident is None:
        incident = Incident(
            regle=rule,
            organisation=organisation,
            sujet=subject[:255],
            resume=summary[:500],
            details=details,
            detecte_le=now,
            echeance_notification=now + timedelta(hours=notification_hours),
            cle_ouverte=key,
            updated_at=now,
        )
        session.add(incident)
        session.add(
            IncidentTransition(
                incident_id=incident.id,
                etat_avant=None,
                etat_apres=OUVERT,
                le=now,
                auteur=DETECTOR_AUTHOR,
                commentaire=summary[:2000],
            )
        )
        session.flush()
        _alert(session, incident, now)
    known = set(
        session.exec(select(IncidentPreuve.audit_event_id).where(IncidentPreuve.incident_id == incident.id)).all()
    )
    added = 0
    for event_id in sorted(set(evidence) - known):
        session.add(IncidentPreuve(incident_id=incident.id, audit_event_id=event_id, ajoute_le=now))
        added += 1
    if added:
        incident.nombre_preuves += added
        if not created:
            # The latest figures of the rule (counts, window) replace the earlier ones.
            incident.details = {**incident.details, **details, "relances": incident.details.get("relances", 0) + 1}
            incident.resume = summary[:500]
        incident.updated_at = now
        session.add(incident)
    session.flush()
    return Opened(incident, created, added)


def remind_overdue(session: Session, *, now: datetime) -> int:
    """Queue, once per incident, a reminder for every incident past its notification deadline
    and not yet notified nor closed (the detector calls it on each run)."""
    overdue = session.exec(
        select(Incident).where(col(Incident.etat).in_((OUVERT, QUALIFIE)), col(Incident.echeance_notification) < now)
    ).all()
    for incident in overdue:
        _alert(session, incident, now, topic=OVERDUE_TOPIC)
    return len(overdue)


def _alert(session: Session, incident: Incident, now: datetime, *, topic: str = ALERT_TOPIC) -> None:
    payload = {
        "incident": incident.id,
        "regle": incident.regle,
        "organisation": incident.organisation,
        "resume": incident.resume,
        "detecteLe": incident.detecte_le.isoformat(),
        "echeanceNotification": incident.echeance_notification.isoformat(),
    }
    organisation_id = None
    if incident.organisation:
        organisation_id = session.exec(
            select(Organisation.id).where(Organisation.code == incident.organisation)
        ).first()
    recipients = ["cssi"]
    if incident.organisation:
        recipients.append(f"rssi:{incident.organisation}")
    for recipient in recipients:
        enqueue(
            session,
            topic=topic,
            recipient=recipient,
            payload=payload,
            idempotency_key=f"{topic}:{incident.id}:{recipient}",
            now=now,
            organisation_id=organisation_id,
        )


def transition(
    session: Session,
    incident_id: str,
    *,
    to: str,
    comment: str,
    now: datetime,
    author: str,
    agent_id: int | None,
    visible: frozenset[str] | None,
    expected_state: str | None = None,
) -> tuple[Incident, str]:
    """Move an incident to ``to``; returns it with its previous state. Locks the row."""
    incident = session.exec(select(Incident).where(Incident.id == incident_id).with_for_update()).first()
    if incident is None or not _visible(incident, visible):
        raise AuditRefused(RefusalKind.UNKNOWN, "INCIDENT_INCONNU", "Incident inconnu")
    if not comment.strip():
        raise AuditRefused(
            RefusalKind.INVALID, "COMMENTAIRE_OBLIGATOIRE", "Un commentaire est obligatoire pour changer d'état"
        )
    before = incident.etat
    if expected_state is not None and expected_state != before:
        raise AuditRefused(
            RefusalKind.CONFLICT,
            "MODIFICATION_CONCURRENTE",
            "L'incident a changé d'état entre-temps : relisez-le avant d'agir",
        )
    if to not in TRANSITIONS.get(before, ()):
        raise AuditRefused(RefusalKind.CONFLICT, "TRANSITION_INTERDITE", f"Transition interdite : {before} vers {to}")
    incident.etat = to
    if to == QUALIFIE:
        incident.qualifie_le = now
    elif to == NOTIFIE:
        incident.notifie_le = now
    elif to == CLOS:
        incident.clos_le = now
        incident.cle_ouverte = None
    incident.updated_at = now
    incident.version += 1
    session.add(incident)
    session.add(
        IncidentTransition(
            incident_id=incident.id,
            etat_avant=before,
            etat_apres=to,
            le=now,
            agent_id=agent_id,
            auteur=author[:128],
            commentaire=comment[:2000],
        )
    )
    session.flush()
    return incident, before


def follow_up(
    session: Session,
    incident_id: str,
    *,
    gravite: str | None,
    assignee: int | None,
    unassign: bool = False,
    now: datetime,
    visible: frozenset[str] | None,
) -> tuple[Incident, dict[str, Any]]:
    """Set an incident's severity and/or assignee; returns it with what changed (codes, ids).

    The caller checks that ``assignee`` is an agent of the incident's organisation (the audit
    domain does not read the agents' table). A closed incident is not followed up any more.
    """
    incident = session.exec(select(Incident).where(Incident.id == incident_id).with_for_update()).first()
    if incident is None or not _visible(incident, visible):
        raise AuditRefused(RefusalKind.UNKNOWN, "INCIDENT_INCONNU", "Incident inconnu")
    if incident.etat == CLOS:
        raise AuditRefused(RefusalKind.CONFLICT, "INCIDENT_CLOS", "Incident clos : il ne se modifie plus")
    changed: dict[str, Any] = {}
    if gravite is not None and gravite != incident.gravite:
        if gravite not in GRAVITES:
            raise AuditRefused(RefusalKind.INVALID, "GRAVITE_INVALIDE", "Gravité : faible, moyenne, élevée ou critique")
        changed["gravite"] = {"avant": incident.gravite, "apres": gravite}
        incident.gravite = gravite
    new_assignee = None if unassign else assignee
    if (unassign or assignee is not None) and new_assignee != incident.assigne_agent_id:
        changed["assigne"] = {"avant": incident.assigne_agent_id, "apres": new_assignee}
        incident.assigne_agent_id = new_assignee
    if changed:
        incident.updated_at = now
        incident.version += 1
        session.add(incident)
        session.flush()
    return incident, changed


def record_notification(
    session: Session,
    incident_id: str,
    *,
    recipient: str,
    notified_at: datetime,
    now: datetime,
    author: str,
    agent_id: int | None,
    visible: frozenset[str] | None,
) -> IncidentNotification:
    """Record that ``recipient`` was told of the incident at ``notified_at`` (not in the future)."""
    incident = get_incident(session, incident_id, visible)
    recipient = " ".join(recipient.split())
    if not recipient:
        raise AuditRefused(
            RefusalKind.INVALID,
            "DESTINATAIRE_OBLIGATOIRE",
            "Indiquez qui a été notifié (par exemple : CSSI France Travail)",
        )
    if len(recipient) > 200:
        raise AuditRefused(RefusalKind.INVALID, "DESTINATAIRE_TROP_LONG", "Destinataire : 200 caractères au plus")
    if notified_at > now:
        raise AuditRefused(
            RefusalKind.INVALID, "DATE_NOTIFICATION_FUTURE", "La date de notification ne peut pas être dans le futur"
        )
    record = IncidentNotification(
        incident_id=incident.id,
        destinataire=recipient,
        notifie_le=notified_at,
        enregistre_le=now,
        agent_id=agent_id,
        auteur=author[:128],
    )
    session.add(record)
    incident.updated_at = now
    session.add(incident)
    session.flush()
    return record


def notifications(session: Session, incident_id: str) -> Sequence[IncidentNotification]:
    return session.exec(
        select(IncidentNotification)
        .where(IncidentNotification.incident_id == incident_id)
        .order_by(col(IncidentNotification.notifie_le), col(IncidentNotification.id))
    ).all()


def notification_json(item: IncidentNotification) -> dict[str, Any]:
    return {"destinataire": item.destinataire, "le": item.notifie_le.isoformat(), "auteur": item.auteur}


def _visible(incident: Incident, visible: frozenset[str] | None) -> bool:
    return visible is None or (incident.organisation is not None and incident.organisation in visible)


def get_incident(session: Session, incident_id: str, visible: frozenset[str] | None) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None or not _visible(incident, visible):
        raise AuditRefused(RefusalKind.UNKNOWN, "INCIDENT_INCONNU", "Incident inconnu")
    return incident


def list_incidents(
    session: Session,
    visible: frozenset[str] | None,
    *,
    etat: str | None,
    regle: str | None,
    limit: int,
) -> tuple[Sequence[Incident], int]:
    conditions: list[ColumnElement[bool]] = []
    if visible is not None:
        conditions.append(col(Incident.organisation).in_(sorted(visible)))
    if etat is not None:
        conditions.append(col(Incident.etat) == etat)
    if regle is not None:
        conditions.append(col(Incident.regle) == regle)
    rows = session.exec(
        select(Incident).where(*conditions).order_by(col(Incident.detecte_le).desc(), col(Incident.id)).limit(limit)
    ).all()
    total = int(session.exec(select(func.count()).select_from(Incident).where(*conditions)).one())
    return rows, total


def evidence_ids(session: Session, incident_id: str) -> list[int]:
    return list(
        session.exec(
            select(IncidentPreuve.audit_event_id)
            .where(IncidentPreuve.incident_id == incident_id)
            .order_by(col(IncidentPreuve.audit_event_id))
        ).all()
    )


def history(session: Session, incident_id: str) -> Sequence[IncidentTransition]:
    return session.exec(
        select(IncidentTransition)
        .where(IncidentTransition.incident_id == incident_id)
        .order_by(col(IncidentTransition.le), col(IncidentTransition.id))
    ).all()


def incident_json(incident: Incident, now: datetime) -> dict[str, Any]:
    overdue = incident.notifie_le is None and incident.etat != CLOS and now > incident.echeance_notification
    return {
        "id": incident.id,
        "regle": incident.regle,
        "etat": incident.etat,
        "organisation": incident.organisation,
        "sujet": incident.sujet,
        "resume": incident.resume,
        "details": incident.details,
        "detecteLe": incident.detecte_le.isoformat(),
        "echeanceNotification": incident.echeance_notification.isoformat(),
        "notificationEnRetard": overdue,
        "qualifieLe": incident.qualifie_le.isoformat() if incident.qualifie_le else None,
        "notifieLe": incident.notifie_le.isoformat() if incident.notifie_le else None,
        "closLe": incident.clos_le.isoformat() if incident.clos_le else None,
        "nombrePreuves": incident.nombre_preuves,
        "gravite": incident.gravite,
        "assigneA": incident.assigne_agent_id,
    }


def transition_json(item: IncidentTransition) -> dict[str, Any]:
    return {
        "etatAvant": item.etat_avant,
        "etatApres": item.etat_apres,
        "le": item.le.isoformat(),
        "auteur": item.auteur,
        "commentaire": item.commentaire,
    }


__all__ = ["CLOS", "NOTIFIE", "OUVERT", "QUALIFIE", "open_or_extend", "transition"]
