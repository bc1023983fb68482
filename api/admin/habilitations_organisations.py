"""Admin API: an organisation's subscriptions (Annexe 4) and its role designations."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse
from sqlmodel import col, or_, select

from api.admin.habilitations_common import (
    GERER,
    LIRE,
    SECURITE,
    admin_action,
    attempted,
    audit,
    authorize,
    check_api,
    context,
    organisation_for,
    parse_date,
)
from api.errors import json_response
from habilitations import designations, subscriptions
from habilitations.models import Designation, Souscription
from habilitations.refusals import HabilitationRefused
from habilitations.views import designation_json, souscription_json
from relais.core.refusals import RefusalKind


@admin_action
def lister_souscriptions(organisation: str) -> ConnexionResponse:
    state, session, principal, _ = context()
    found = organisation_for(session, principal, organisation, LIRE)
    audit(state, f"organisation:{found.code}")
    rows = session.exec(
        select(Souscription).where(Souscription.organisation_id == found.id).order_by(col(Souscription.api))
    ).all()
    return json_response(200, [souscription_json(row) for row in rows])


@admin_action
def definir_souscription(organisation: str, api: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    found = organisation_for(session, principal, organisation, SECURITE)
    assert found.id is not None
    check_api(api)
    souscription = subscriptions.set_subscription(
        session,
        principal,
        organisation_id=found.id,
        api=api,
        scopes=body["scopes"],
        reference=body.get("reference"),
        demandee_le=parse_date(body.get("demandeeLe"), "demandeeLe"),
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"souscription:{souscription.id}", api=api)
    return json_response(200, souscription_json(souscription))


@admin_action
def lister_designations(organisation: str, enCours: bool = True) -> ConnexionResponse:
    state, session, principal, now = context()
    found = organisation_for(session, principal, organisation, LIRE)
    audit(state, f"organisation:{found.code}")
    query = select(Designation).where(Designation.organisation_id == found.id)
    if enCours:
        query = query.where(Designation.debut <= now, or_(col(Designation.fin).is_(None), col(Designation.fin) > now))
    rows = session.exec(query.order_by(col(Designation.debut).desc(), col(Designation.id).desc())).all()
    return json_response(200, [designation_json(session, row) for row in rows])


@admin_action
def designer(organisation: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    found = organisation_for(session, principal, organisation, GERER)
    assert found.id is not None
    designation = designations.designate(
        session,
        principal,
        organisation_id=found.id,
        agent_id=body["agentId"],
        role=body["role"],
        acte_engagement_le=parse_date(body.get("acteEngagementLe"), "acteEngagementLe"),
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"designation:{designation.id}", role=designation.role, agent_id=designation.agent_id)
    return json_response(201, designation_json(session, designation))


@admin_action
def terminer_designation(designationId: int, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    attempted(f"designation:{designationId}")
    designation = session.get(Designation, designationId)
    if designation is None:
        raise HabilitationRefused(
            RefusalKind.UNKNOWN, "DESIGNATION_INCONNUE", "Aucune désignation ne porte cet identifiant"
        )
    authorize(principal, designation.organisation_id, GERER)
    designation = designations.end_designation(
        session,
        principal,
        designationId,
        motif=body["motif"],
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"designation:{designation.id}", role=designation.role, motif=body["motif"])
    return json_response(200, designation_json(session, designation))
