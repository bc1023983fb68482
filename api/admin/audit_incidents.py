"""Audit v1: the incidents opened by the detection rules — list, detail with evidence, transitions.

A security officer sees and handles the incidents of their organisation; the CSSI all of
them. An incident outside one's perimeter answers 404, as if it did not exist.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from connexion.lifecycle import ConnexionResponse
from sqlmodel import Session, col, select
from starlette.responses import StreamingResponse

from api.admin.audit_access import author_of, current_visibility, parse_moment, refused_answer
from api.context import current_request
from api.errors import json_response
from audit import checkpoints, incidents
from audit.export import export_records
from audit.incident_models import Incident
from audit.models import AuditEvent
from audit.refusals import AuditRefused, RefusalKind
from audit.search import event_json
from habilitations.models import SUPPRIME, Agent
from relais.core.tables import Organisation

MAX_EVIDENCE_SHOWN = 500


def lister_incidents(etat: str | None = None, regle: str | None = None, limite: int = 100) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        _, visible = current_visibility(session)
    except AuditRefused as refused:
        return refused_answer(refused)
    state.audit.details = {"filtres": [name for name, value in (("etat", etat), ("regle", regle)) if value]}
    rows, total = incidents.list_incidents(session, visible, etat=etat, regle=regle, limit=limite)
    now = state.services.clock()
    return json_response(200, {"total": total, "incidents": [incidents.incident_json(row, now) for row in rows]})


def lire_incident(incidentId: str) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    state.audit.target = f"incident:{incidentId}"
    try:
        _, visible = current_visibility(session)
        incident = incidents.get_incident(session, incidentId, visible)
    except AuditRefused as refused:
        return refused_answer(refused)
    return json_response(200, _detail(session, incident, state.services.clock()))


def exporter_preuves_incident(incidentId: str) -> ConnexionResponse | StreamingResponse:
    state = current_request()
    session = state.session()
    state.audit.target = f"incident:{incidentId}"
    try:
        _, visible = current_visibility(session)
        incident = incidents.get_incident(session, incidentId, visible)
    except AuditRefused as refused:
        return refused_answer(refused)
    settings, now = state.services.settings, state.services.clock()
    # Signed over everything committed, so that every piece of evidence carries its proof.
    checkpoint = checkpoints.checkpoint_in(session, checkpoints.signing_key(settings), now=now)
    records = export_records(
        session,
        incidents.evidence_ids(session, incident.id),
        checkpoint=checkpoint or checkpoints.latest_checkpoint(session),
    )
    return StreamingResponse(
        (json.dumps(record, ensure_ascii=False) + "\n" for record in records),
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="incident-{incident.id}.jsonl"'},
    )


def changer_etat_incident(incidentId: str, body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    state.audit.target = f"incident:{incidentId}"
    try:
        principal, visible = current_visibility(session)
        now = state.services.clock()
        incident, before = incidents.transition(
            session,
            incidentId,
            to=body["etat"],
            comment=body["commentaire"],
            now=now,
            author=author_of(principal),
            agent_id=principal.agent_id,
            visible=visible,
            expected_state=body.get("etatActuel"),
        )
    except AuditRefused as refused:
        return refused_answer(refused)
    # State codes only: the comment may hold anything and stays in the incident's history.
    state.audit.details = {"avant": before, "apres": incident.etat}
    return json_response(200, _detail(session, incident, now))


def suivre_incident(incidentId: str, body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    state.audit.target = f"incident:{incidentId}"
    try:
        _, visible = current_visibility(session)
        now = state.services.clock()
        assignee = body.get("assigneA")
        if assignee is not None:
            check_assignee(session, incidents.get_incident(session, incidentId, visible), assignee)
        incident, changed = incidents.follow_up(
            session,
            incidentId,
            gravite=body.get("gravite"),
            assignee=assignee,
            unassign="assigneA" in body and assignee is None,
            now=now,
            visible=visible,
        )
    except AuditRefused as refused:
        return refused_answer(refused)
    state.audit.details = changed
    return json_response(200, _detail(session, incident, now))


def notifier_incident(incidentId: str, body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    state.audit.target = f"incident:{incidentId}"
    try:
        principal, visible = current_visibility(session)
        now = state.services.clock()
        try:
            given = parse_moment(body.get("le"))
            when = given.astimezone(UTC) if given is not None else now
        except (ValueError, OverflowError):
            # OverflowError: year 1 or 9999 with an offset, valid ISO 8601 but no UTC instant.
            raise AuditRefused(RefusalKind.INVALID, "DATE_INVALIDE", "le : date-heure ISO 8601 attendue") from None
        incidents.record_notification(
            session,
            incidentId,
            recipient=body["destinataire"],
            notified_at=when,
            now=now,
            author=author_of(principal),
            agent_id=principal.agent_id,
            visible=visible,
        )
        incident = incidents.get_incident(session, incidentId, visible)
    except AuditRefused as refused:
        return refused_answer(refused)
    return json_response(201, _detail(session, incident, now))


def check_assignee(session: Session, incident: Incident, agent_id: int) -> Agent:
    """The agent to assign: a person of the incident's organisation, not deleted."""
    agent = session.get(Agent, agent_id)
    organisation_id = (
        session.exec(select(Organisation.id).where(Organisation.code == incident.organisation)).first()
        if incident.organisation
        else None
    )
    if agent is None or agent.organisation_id != organisation_id or agent.etat == SUPPRIME:
        raise AuditRefused(
            RefusalKind.INVALID,
            "ASSIGNE_INVALIDE",
            "Responsable : choisissez un agent de l'organisation concernée par l'incident",
        )
    return agent


def _detail(session: Session, incident: Incident, now: Any) -> dict[str, Any]:
    ids = incidents.evidence_ids(session, incident.id)[:MAX_EVIDENCE_SHOWN]
    events = session.exec(select(AuditEvent).where(col(AuditEvent.id).in_(ids)).order_by(col(AuditEvent.id))).all()
    return {
        **incidents.incident_json(incident, now),
        "preuves": [event_json(event) for event in events],
        "historique": [incidents.transition_json(item) for item in incidents.history(session, incident.id)],
        "notifications": [incidents.notification_json(item) for item in incidents.notifications(session, incident.id)],
    }
