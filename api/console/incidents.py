"""Le tableau des incidents de sécurité (RSSI, CSSI): délai de 48 h, gravité, notifications.

Visibility, transitions and their refusals are the audit API's own (``audit_access``,
``audit.incidents``, ``api.admin.audit_incidents.check_assignee``). The countdown to the
notification deadline is computed when the page is served (no script); the page says when
it was computed and offers to refresh it rather than reloading by itself, which would move a
screen reader or a keyboard user back to the top of the page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.admin.audit_access import author_of, visible_organisations
from api.admin.audit_incidents import check_assignee
from api.console.web import ConsoleRefused, Download, Page, form, page, require_form
from api.context import RequestState
from audit import checkpoints
from audit import incidents as domain
from audit.export import export_records
from audit.incident_models import CLOS, GRAVITES, NOTIFIE, QUALIFIE, TRANSITIONS, Incident
from habilitations.models import SUPPRIME, Agent
from habilitations.roles import Principal
from relais.core.french_dates import PARIS, local_time
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

LIMIT = 200
ETATS = {"OUVERT": "Ouvert", "QUALIFIE": "Qualifié", "NOTIFIE": "Notifié", "CLOS": "Clos"}
ACTIONS = {QUALIFIE: "Qualifier (incident confirmé)", NOTIFIE: "Marquer comme notifié", CLOS: "Clore"}
GRAVITE_LABELS = {"faible": "Faible", "moyenne": "Moyenne", "elevee": "Élevée", "critique": "Critique"}
RULES = {
    "lectures_massives": "Lectures en masse de dossiers",
    "lectures_hors_horaires": "Lectures en dehors des horaires de travail",
    "refus_repetes": "Refus répétés",
    "hors_perimetre": "Tentatives hors du périmètre de l'organisation",
    "auto_habilitation": "Un agent s'est accordé une habilitation",
    "action_exceptionnelle": "Action exceptionnelle (bris de glace)",
    "scope_inhabituel": "Droit rarement utilisé",
}
DONE = {
    "suivi": "Gravité et responsable enregistrés.",
    "notification": "Notification enregistrée.",
    "transition": "État de l'incident modifié.",
}


async def board(request: Request) -> Response:
    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        visible = visible_organisations(session, principal)
        rows, total = domain.list_incidents(session, visible, etat=None, regle=None, limit=LIMIT)
        names = _agent_names(session, [row.assigne_agent_id for row in rows])
        # Open incidents first, the nearest deadline first; then the closed ones, latest first.
        open_rows = sorted((row for row in rows if row.etat != CLOS), key=lambda row: _aware(row.echeance_notification))
        closed = [row for row in rows if row.etat == CLOS]
        return Page(
            "incidents.html",
            {
                "incidents": [_summary(row, now, names) for row in [*open_rows, *closed]],
                "total": total,
                "limite": LIMIT,
                "calcule_a": local_time(now).strftime("%H:%M"),
            },
        )

    return await page(request, "console.incidents.liste", work)


async def detail(request: Request) -> Response:
    incident_id = str(request.path_params["incident_id"])
    done = DONE.get(request.query_params.get("fait") or "")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        state.audit.target = f"incident:{incident_id}"
        visible = visible_organisations(session, principal)
        incident = domain.get_incident(session, incident_id, visible)
        return Page("incident.html", _detail_context(session, incident, now) | {"fait": done})

    return await page(request, "console.incidents.fiche", work)


async def evidence(request: Request) -> Response:
    """The incident's evidence pack: the events in question, each with its proof of inclusion in a
    signed checkpoint (the audit API's JSON Lines export), to attach to the notification."""
    incident_id = str(request.path_params["incident_id"])

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        state.audit.target = f"incident:{incident_id}"
        incident = domain.get_incident(session, incident_id, visible_organisations(session, principal))
        settings = state.services.settings
        # Signed over everything committed, so that every piece of evidence carries its proof.
        checkpoint = checkpoints.checkpoint_in(session, checkpoints.signing_key(settings), now=now)
        records = export_records(
            session,
            domain.evidence_ids(session, incident.id),
            checkpoint=checkpoint or checkpoints.latest_checkpoint(session),
        )
        content = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        return Page(download=Download(content, "application/jsonl", f"incident-{incident.id}-preuves.jsonl"))

    return await page(request, "console.incidents.preuves", work)


async def follow_up(request: Request) -> Response:
    incident_id = str(request.path_params["incident_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        state.audit.target = f"incident:{incident_id}"
        visible = visible_organisations(session, principal)
        incident = domain.get_incident(session, incident_id, visible)
        chosen = str(data.get("assigne", "")).strip()
        assignee: int | None = None
        if chosen:
            if not chosen.isdigit():
                raise ConsoleRefused(RefusalKind.INVALID, "ASSIGNE_INVALIDE", "Responsable : choisissez dans la liste")
            assignee = check_assignee(session, incident, int(chosen)).id
        _, changed = domain.follow_up(
            session,
            incident_id,
            gravite=str(data.get("gravite", "")) or None,
            assignee=assignee,
            unassign=not chosen,
            now=now,
            visible=visible,
        )
        state.audit.details = changed
        return Page(redirect_to=f"/console/incidents/{incident_id}?fait=suivi")

    return await page(request, "console.incidents.suivi", work)


async def notification(request: Request) -> Response:
    incident_id = str(request.path_params["incident_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        state.audit.target = f"incident:{incident_id}"
        visible = visible_organisations(session, principal)
        domain.record_notification(
            session,
            incident_id,
            recipient=str(data.get("destinataire", "")),
            notified_at=_moment(data, now),
            now=now,
            author=author_of(principal),
            agent_id=principal.agent_id,
            visible=visible,
        )
        return Page(redirect_to=f"/console/incidents/{incident_id}?fait=notification")

    return await page(request, "console.incidents.notification", work)


async def move(request: Request) -> Response:
    incident_id = str(request.path_params["incident_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        state.audit.target = f"incident:{incident_id}"
        visible = visible_organisations(session, principal)
        incident, before = domain.transition(
            session,
            incident_id,
            to=str(data.get("etat", "")),
            comment=str(data.get("commentaire", "")),
            now=now,
            author=author_of(principal),
            agent_id=principal.agent_id,
            visible=visible,
            expected_state=str(data.get("etat_actuel", "")) or None,
        )
        # State codes only, as the audit API records them: the comment stays in the history.
        state.audit.details = {"avant": before, "apres": incident.etat}
        return Page(redirect_to=f"/console/incidents/{incident_id}?fait=transition")

    return await page(request, "console.incidents.transition", work)


# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = [
    Route("/console/incidents", board, methods=["GET"]),
    Route("/console/incidents/{incident_id:str}", detail, methods=["GET"]),
    Route("/console/incidents/{incident_id:str}/preuves", evidence, methods=["GET"]),
    Route("/console/incidents/{incident_id:str}/suivi", follow_up, methods=["POST"]),
    Route("/console/incidents/{incident_id:str}/notification", notification, methods=["POST"]),
    Route("/console/incidents/{incident_id:str}/transition", move, methods=["POST"]),
]


# Helpers ----------------------------------------------------------------------------------


def countdown(incident: Incident, now: datetime) -> dict[str, Any]:
    """What the deadline column says: time left, or how late, in words (never colour alone)."""
    deadline = _aware(incident.echeance_notification)
    when = local_time(deadline).strftime("%d/%m/%Y à %H:%M")
    if incident.notifie_le is not None or incident.etat in (NOTIFIE, CLOS):
        return {"texte": "Notifié" if incident.etat != CLOS else "Clos", "echeance": when, "retard": False}
    left = deadline - now
    minutes = int(abs(left.total_seconds()) // 60)
    spent = f"{minutes // 60} h {minutes % 60:02d} min"
    if left.total_seconds() >= 0:
        return {"texte": f"reste {spent}", "echeance": when, "retard": False}
    return {"texte": f"En retard de {spent}", "echeance": when, "retard": True}


def _summary(incident: Incident, now: datetime, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": incident.id,
        "regle": RULES.get(incident.regle, incident.regle.replace("_", " ")),
        "resume": incident.resume,
        "organisation": incident.organisation or "—",
        "etat": ETATS.get(incident.etat, incident.etat),
        "gravite": incident.gravite,
        "gravite_libelle": GRAVITE_LABELS.get(incident.gravite, incident.gravite),
        "detecte": local_time(incident.detecte_le).strftime("%d/%m/%Y %H:%M"),
        "delai": countdown(incident, now),
        "assigne": names.get(incident.assigne_agent_id or 0, ""),
    }


def _detail_context(session: Session, incident: Incident, now: datetime) -> dict[str, Any]:
    organisation_id = (
        session.exec(select(Organisation.id).where(Organisation.code == incident.organisation)).first()
        if incident.organisation
        else None
    )
    agents = (
        session.exec(
            select(Agent)
            .where(Agent.organisation_id == organisation_id, Agent.type == "humain", col(Agent.etat) != SUPPRIME)
            .order_by(col(Agent.nom), col(Agent.prenom))
        ).all()
        if organisation_id is not None
        else []
    )
    history = domain.history(session, incident.id)
    authors = _agent_names(session, [item.agent_id for item in history])
    notified = domain.notifications(session, incident.id)
    authors |= _agent_names(session, [item.agent_id for item in notified])
    names = _agent_names(session, [incident.assigne_agent_id])
    return {
        "incident": _summary(incident, now, names),
        "etat_code": incident.etat,
        "gravite_code": incident.gravite,
        "assigne_id": incident.assigne_agent_id,
        "nombre_preuves": incident.nombre_preuves,
        "agents": [{"id": agent.id, "nom": f"{agent.prenom} {agent.nom}".strip()} for agent in agents],
        "gravites": {code: GRAVITE_LABELS[code] for code in GRAVITES},
        "actions": {state: ACTIONS[state] for state in TRANSITIONS.get(incident.etat, ())},
        "historique": [
            {
                "le": local_time(item.le).strftime("%d/%m/%Y %H:%M"),
                "avant": ETATS.get(item.etat_avant or "", "—"),
                "apres": ETATS.get(item.etat_apres, item.etat_apres),
                "auteur": authors.get(item.agent_id or 0)
                or ("Détection automatique" if item.agent_id is None else "Agent"),
                "commentaire": item.commentaire,
            }
            for item in history
        ],
        "notifications": [
            {
                "destinataire": item.destinataire,
                "le": local_time(item.notifie_le).strftime("%d/%m/%Y à %H:%M"),
                "auteur": authors.get(item.agent_id or 0, "Agent"),
            }
            for item in notified
        ],
        "aujourdhui": local_time(now).date().isoformat(),
        "heure": local_time(now).strftime("%H:%M"),
        "clos": incident.etat == CLOS,
        "calcule_a": local_time(now).strftime("%H:%M"),
    }


def _moment(data: dict[str, Any], now: datetime) -> datetime:
    """The notification's local date and time from the form (now when left empty)."""
    day, hour = str(data.get("date", "")).strip(), str(data.get("heure", "")).strip()
    if not day and not hour:
        return now
    try:
        parsed_day = (
            datetime.strptime(day, "%d/%m/%Y").date() if "/" in day else datetime.strptime(day, "%Y-%m-%d").date()
        )
        parsed_hour = datetime.strptime(hour, "%H:%M").time() if hour else time(0, 0)
    except ValueError:
        raise ConsoleRefused(
            RefusalKind.INVALID, "DATE_INVALIDE", "Date ou heure de notification illisible (jj/mm/aaaa, hh:mm)"
        ) from None
    return datetime.combine(parsed_day, parsed_hour, PARIS).astimezone(UTC)


def _agent_names(session: Session, ids: list[int | None]) -> dict[int, str]:
    wanted = sorted({agent_id for agent_id in ids if agent_id is not None})
    if not wanted:
        return {}
    agents = session.exec(select(Agent).where(col(Agent.id).in_(wanted))).all()
    return {agent.id: f"{agent.prenom} {agent.nom}".strip() for agent in agents if agent.id is not None}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
