"""Admin API: agents (people) and technical identities, and their state changes."""

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
    authorize,
    context,
    organisation_for,
    paginate,
)
from api.errors import json_response
from habilitations import agent_states, agents
from habilitations.models import Agent, Designation, Habilitation
from habilitations.refusals import HabilitationRefused
from habilitations.views import agent_json, designation_json, habilitation_json
from relais.core.refusals import RefusalKind
from relais.core.tables import Client


@admin_action
def lister_agents(
    organisation: str, etat: str | None = None, type: str | None = None, page: int = 1, taille: int = 50
) -> ConnexionResponse:
    state, session, principal, _ = context()
    found = organisation_for(session, principal, organisation, LIRE)
    audit(state, f"organisation:{found.code}", etat=etat, type=type, page=page)
    query = select(Agent).where(Agent.organisation_id == found.id)
    if etat is not None:
        query = query.where(Agent.etat == etat)
    if type is not None:
        query = query.where(Agent.type == type)
    rows, total = paginate(session, query.order_by(col(Agent.identifiant), col(Agent.id)), page, taille)
    return json_response(
        200,
        {"resultats": [agent_json(session, row) for row in rows], "page": page, "taille": taille, "total": total},
    )


@admin_action
def creer_agent(organisation: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    found = organisation_for(session, principal, organisation, GERER)
    assert found.id is not None
    agent = agents.create_agent(
        session,
        principal,
        organisation_id=found.id,
        identifiant=body["identifiant"],
        nom=body["nom"],
        prenom=body.get("prenom", ""),
        email=body.get("email"),
        siret=body.get("siret"),
        statut_emploi=body.get("statutEmploi"),
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"agent:{agent.id}", type=agent.type)
    return json_response(201, agent_json(session, agent))


@admin_action
def creer_identite_technique(organisation: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    found = organisation_for(session, principal, organisation, GERER)
    client = session.exec(select(Client).where(Client.client_id == body["clientId"])).first()
    # Another organisation's client is as unknown as a missing one: ids do not leak across.
    if client is None or client.organisation_id != found.id:
        raise HabilitationRefused(
            RefusalKind.UNKNOWN, "CLIENT_INCONNU", "Aucun client de cette organisation ne porte cet identifiant"
        )
    agent = agents.create_technical_identity(
        session,
        principal,
        client_id=client.client_id,
        nom=body["nom"],
        identifiant=body.get("identifiant", "BATCH"),
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"agent:{agent.id}", type=agent.type, client_id=client.client_id)
    return json_response(201, agent_json(session, agent))


@admin_action
def consulter_agent(agentId: int) -> ConnexionResponse:
    state, session, principal, _ = context()
    agent = agent_for(session, principal, agentId, LIRE)
    audit(state, f"agent:{agent.id}")
    grants = session.exec(
        select(Habilitation).where(Habilitation.agent_id == agent.id).order_by(col(Habilitation.accordee_le).desc())
    ).all()
    designations = session.exec(
        select(Designation).where(Designation.agent_id == agent.id).order_by(col(Designation.debut).desc())
    ).all()
    return json_response(
        200,
        {
            "agent": agent_json(session, agent),
            "habilitations": [habilitation_json(grant) for grant in grants],
            "designations": [designation_json(session, designation) for designation in designations],
        },
    )


# API field -> agent attribute, for the identity fields an RGC may correct.
_EDITABLE = {
    "identifiant": "identifiant",
    "nom": "nom",
    "prenom": "prenom",
    "email": "email",
    "siret": "siret",
    "statutEmploi": "statut_emploi",
}


@admin_action
def modifier_agent(agentId: int, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    agent_for(session, principal, agentId, GERER)
    changes = {_EDITABLE[name]: value for name, value in body.items()}
    agent = agents.update_agent(
        session,
        principal,
        agentId,
        changes=changes,
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"agent:{agent.id}", champs=sorted(changes))
    return json_response(200, agent_json(session, agent))


@admin_action
def changer_etat_agent(agentId: int, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    action, motif = body["action"], body["motif"]
    agent = agent_for(session, principal, agentId, SECURITE if action == "bloquer" else GERER)
    recorder, request_id = state.services.audit_recorder, state.request_id
    if action == "bloquer":
        agent_states.block_agent(
            session,
            principal,
            agentId,
            motif=motif,
            commentaire=body.get("commentaire"),
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
    elif action == "reactiver":
        if agent.etat == "bloque":
            authorize(principal, agent.organisation_id, SECURITE)
        agent_states.reactivate_agent(
            session,
            principal,
            agentId,
            motif=motif,
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
    elif action == "revoquer":
        agent_states.revoke_agent(
            session,
            principal,
            agentId,
            motif=motif,
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
    else:
        agent_states.delete_agent(
            session,
            principal,
            agentId,
            motif=motif,
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
    audit(state, f"agent:{agentId}", action=action, motif=motif, etat=agent.etat)
    return json_response(200, agent_json(session, agent))
