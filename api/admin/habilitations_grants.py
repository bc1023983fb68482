"""Admin API: habilitations (grant, list, extend or shorten, reduce, revoke, block)."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse
from sqlmodel import col, select

from api.admin.habilitations_common import (
    GERER,
    LIRE,
    SECURITE,
    admin_action,
    agent_for,
    audit,
    context,
    habilitation_for,
    organisation_for,
    paginate,
    parse_date,
)
from api.errors import json_response
from habilitations import grants
from habilitations.models import Agent, Habilitation
from habilitations.views import habilitation_json


@admin_action
def accorder_habilitation(agentId: int, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    agent_for(session, principal, agentId, GERER)
    grant = grants.grant_habilitation(
        session,
        principal,
        agent_id=agentId,
        api=body["api"],
        scopes=body["scopes"],
        finalite=body["finalite"],
        justification=body.get("justification"),
        date_fin=parse_date(body.get("dateFin"), "dateFin"),
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"habilitation:{grant.id}", agent_id=agentId, api=grant.api)
    return json_response(201, habilitation_json(grant))


@admin_action
def lister_habilitations(
    organisation: str,
    agentId: int | None = None,
    etat: str | None = None,
    api: str | None = None,
    page: int = 1,
    taille: int = 50,
) -> ConnexionResponse:
    state, session, principal, _ = context()
    found = organisation_for(session, principal, organisation, LIRE)
    audit(state, f"organisation:{found.code}", agent_id=agentId, etat=etat, page=page)
    query = (
        select(Habilitation)
        .join(Agent, col(Agent.id) == col(Habilitation.agent_id))
        .where(Agent.organisation_id == found.id)
    )
    if agentId is not None:
        query = query.where(Habilitation.agent_id == agentId)
    if etat is not None:
        query = query.where(Habilitation.etat == etat)
    if api is not None:
        query = query.where(Habilitation.api == api)
    rows, total = paginate(
        session, query.order_by(col(Habilitation.accordee_le).desc(), col(Habilitation.id)), page, taille
    )
    return json_response(
        200, {"resultats": [habilitation_json(row) for row in rows], "page": page, "taille": taille, "total": total}
    )


@admin_action
def consulter_habilitation(habilitationId: str) -> ConnexionResponse:
    state, session, principal, _ = context()
    grant = habilitation_for(session, principal, habilitationId, LIRE)
    audit(state, f"habilitation:{grant.id}")
    return json_response(200, habilitation_json(grant))


@admin_action
def definir_date_fin(habilitationId: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    habilitation_for(session, principal, habilitationId, GERER)
    date_fin = parse_date(body.get("dateFin"), "dateFin")
    grant = grants.set_habilitation_end(
        session,
        principal,
        habilitationId,
        date_fin=date_fin,
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"habilitation:{grant.id}", date_fin=body.get("dateFin"))
    return json_response(200, habilitation_json(grant))


@admin_action
def reduire_habilitation(habilitationId: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    habilitation_for(session, principal, habilitationId, GERER)
    grant = grants.reduce_habilitation(
        session,
        principal,
        habilitationId,
        scopes=body["scopes"],
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"habilitation:{grant.id}", scopes=list(grant.scopes))
    return json_response(200, habilitation_json(grant))


@admin_action
def changer_etat_habilitation(habilitationId: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    action, motif = body["action"], body["motif"]
    habilitation_for(session, principal, habilitationId, GERER if action == "revoquer" else SECURITE)
    if action == "revoquer":
        change = grants.revoke_habilitation
    elif action == "bloquer":
        change = grants.block_habilitation
    else:
        change = grants.reactivate_habilitation
    grant = change(
        session,
        principal,
        habilitationId,
        motif=motif,
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"habilitation:{grant.id}", action=action, motif=motif, etat=grant.etat)
    return json_response(200, habilitation_json(grant))
