"""The JSON shapes of the domain's objects, as the admin API answers them and the CLI prints them.

Field names are the admin API contract's (French, camelCase); dates are ISO 8601. One shape
per object, so that a script reading the CLI and a client of the API see the same thing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from habilitations.campaign_models import CampagneElement, CampagneRevue
from habilitations.models import Agent, Designation, Habilitation, Souscription
from relais.core.tables import Organisation


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def organisation_code(session: Session, organisation_id: int) -> str:
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    return organisation.code


def agent_json(session: Session, agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "organisation": organisation_code(session, agent.organisation_id),
        "identifiant": agent.identifiant,
        "type": agent.type,
        "clientId": agent.client_id or None,
        "nom": agent.nom,
        "prenom": agent.prenom,
        "email": agent.email,
        "statutEmploi": agent.statut_emploi,
        "etat": agent.etat,
        "etatMotif": agent.etat_motif,
        "etatDepuis": iso(agent.etat_depuis),
        "derniereConnexion": iso(agent.derniere_connexion),
        "derniereConnexionAcr": agent.derniere_connexion_acr,
        "derniereActivite": iso(agent.derniere_activite),
        "creeLe": iso(agent.created_at),
    }


def agent_summary(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "identifiant": agent.identifiant,
        "type": agent.type,
        "nom": agent.nom,
        "prenom": agent.prenom,
    }


def habilitation_json(habilitation: Habilitation) -> dict[str, Any]:
    return {
        "id": habilitation.id,
        "agentId": habilitation.agent_id,
        "api": habilitation.api,
        "scopes": list(habilitation.scopes),
        "finalite": habilitation.finalite,
        "justification": habilitation.justification,
        "accordeePar": habilitation.accordee_par_libelle,
        "accordeeLe": iso(habilitation.accordee_le),
        "dateFin": iso(habilitation.date_fin),
        "etat": habilitation.etat,
        "etatMotif": habilitation.etat_motif,
        "etatDepuis": iso(habilitation.etat_depuis),
    }


def designation_json(session: Session, designation: Designation) -> dict[str, Any]:
    return {
        "id": designation.id,
        "organisation": organisation_code(session, designation.organisation_id),
        "agentId": designation.agent_id,
        "role": designation.role,
        "acteEngagementLe": iso(designation.acte_engagement_le),
        "debut": iso(designation.debut),
        "fin": iso(designation.fin),
        "motifFin": designation.motif_fin,
    }


def souscription_json(souscription: Souscription) -> dict[str, Any]:
    return {
        "api": souscription.api,
        "scopes": list(souscription.scopes),
        "reference": souscription.reference,
        "demandeeLe": iso(souscription.demandee_le),
    }


def campaign_json(session: Session, campagne: CampagneRevue) -> dict[str, Any]:
    decisions = session.exec(select(CampagneElement.decision).where(CampagneElement.campagne_id == campagne.id)).all()
    return {
        "id": campagne.id,
        "organisation": organisation_code(session, campagne.organisation_id),
        "etat": campagne.etat,
        "dateLimite": campagne.date_limite.isoformat(),
        "ouverteLe": iso(campagne.ouverte_le),
        "ouvertePar": campagne.ouverte_par_libelle,
        "echueLe": iso(campagne.echue_le),
        "clotureeLe": iso(campagne.cloturee_le),
        "clotureePar": campagne.cloturee_par_libelle,
        "elements": len(decisions),
        "elementsNonDecides": sum(1 for decision in decisions if decision is None),
    }


def item_json(item: CampagneElement) -> dict[str, Any]:
    return {
        "id": item.id,
        "agentId": item.agent_id,
        "habilitationId": item.habilitation_id,
        "preuves": item.preuves,
        "decision": item.decision,
        "dateFin": iso(item.decision_date_fin),
        "scopes": item.decision_scopes,
        "commentaire": item.commentaire,
        "decideePar": item.decidee_par_libelle,
        "decideeLe": iso(item.decidee_le),
        "remediation": item.remediation,
        "remediationCode": item.remediation_code,
        "remediationLe": iso(item.remediation_le),
    }
