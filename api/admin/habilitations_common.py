"""What every handler of the habilitations admin API shares: roles, refusals, JSON shapes.

Authorisation is decided here per organisation, from the principal re-read on this request:

- ``LIRE``: the organisation's RGC (titular or deputy) and RSSI, France Travail's CSSI, the
  hub operator;
- ``GERER``: the organisation's RGC, the CSSI and the operator (``habilitations.lifecycle``
  then applies the finer rules: separation of duties, who designates whom...);
- ``REVOIR`` (review campaigns): the organisation's RGC and the operator;
- ``SECURITE`` (overrides, subscriptions): the CSSI and the operator.

Every refusal is a ``{codeHttp, codeErreur, message}`` body and an audit reason code; the
request's event names its target and value-free details.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, ParamSpec

from connexion.lifecycle import ConnexionResponse
from sqlalchemy import func
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from api.admin.admin_security import admin_refused, current_principal
from api.context import RequestState, current_request
from habilitations.campaigns import CONFLIT, INTERDIT, INTROUVABLE, CampaignRefused
from habilitations.lifecycle import LifecycleRefused
from habilitations.models import Agent, Designation, Habilitation, Souscription
from habilitations.roles import Principal
from relais.core.tables import Organisation
from specs import served_documents

LIRE = "lire"
GERER = "gerer"
REVOIR = "revoir"
SECURITE = "securite"

_CAMPAIGN_STATUS = {INTROUVABLE: 404, CONFLIT: 409, INTERDIT: 403}

P = ParamSpec("P")


class Refusal(Exception):
    """Stops a handler with an error response (the pipeline rolls its transaction back)."""

    def __init__(self, status: int, code: str, message: str, reason: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason


def admin_action(handler: Callable[P, ConnexionResponse]) -> Callable[P, ConnexionResponse]:
    """Turn the refusals of this layer, the lifecycle and the campaigns into contract errors."""

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> ConnexionResponse:
        try:
            return handler(*args, **kwargs)
        except Refusal as refusal:
            return admin_refused(refusal.status, refusal.code, refusal.message, refusal.reason)
        except LifecycleRefused as refused:
            return admin_refused(refused.status, refused.code.upper(), refused.message, f"lifecycle:{refused.code}")
        except CampaignRefused as refused:
            status = _CAMPAIGN_STATUS.get(refused.kind, 400)
            return admin_refused(status, refused.code, refused.message, f"campagne:{refused.code.lower()}")

    return wrapper


def context() -> tuple[RequestState, Session, Principal, datetime]:
    state = current_request()
    return state, state.session(), current_principal(), state.services.clock()


def may(principal: Principal, organisation_id: int, level: str) -> bool:
    if principal.is_operator:
        return True
    if level == LIRE:
        return principal.is_security_officer_of(organisation_id) or principal.is_rgc_of(organisation_id)
    if level == GERER:
        return principal.is_cssi or principal.is_rgc_of(organisation_id)
    if level == REVOIR:
        return principal.is_rgc_of(organisation_id)
    return level == SECURITE and principal.is_cssi


_MESSAGES = {
    LIRE: "Consultation réservée au RGC et au RSSI de l'organisation, au CSSI et à l'opérateur du hub",
    GERER: "Action réservée au RGC de l'organisation, au CSSI ou à l'opérateur du hub",
    REVOIR: "Revue des habilitations réservée au RGC de l'organisation ou à l'opérateur du hub",
    SECURITE: "Action de sécurité réservée au CSSI de France Travail ou à l'opérateur du hub",
}


def authorize(principal: Principal, organisation_id: int, level: str) -> None:
    if not may(principal, organisation_id, level):
        raise Refusal(403, "ROLE_INSUFFISANT", _MESSAGES[level], f"role:{level}")


def organisation_by_code(session: Session, code: str) -> Organisation:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if organisation is None or organisation.id is None:
        raise Refusal(404, "ORGANISATION_INCONNUE", "Aucune organisation ne porte ce code", "organisation_inconnue")
    return organisation


def attempted(target: str) -> None:
    """Name what the call acts upon before deciding, so that refusals are attributable too."""
    current_request().audit.target = target[:128]


def organisation_for(session: Session, principal: Principal, code: str, level: str) -> Organisation:
    attempted(f"organisation:{code}")
    organisation = organisation_by_code(session, code)
    assert organisation.id is not None
    authorize(principal, organisation.id, level)
    return organisation


def agent_for(session: Session, principal: Principal, agent_id: int, level: str) -> Agent:
    attempted(f"agent:{agent_id}")
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise Refusal(404, "AGENT_INCONNU", "Aucun agent ne porte cet identifiant", "agent_inconnu")
    authorize(principal, agent.organisation_id, level)
    return agent


def habilitation_for(session: Session, principal: Principal, habilitation_id: str, level: str) -> Habilitation:
    attempted(f"habilitation:{habilitation_id}")
    habilitation = session.get(Habilitation, habilitation_id)
    agent = session.get(Agent, habilitation.agent_id) if habilitation is not None else None
    if habilitation is None or agent is None:
        raise Refusal(
            404, "HABILITATION_INCONNUE", "Aucune habilitation ne porte cet identifiant", "habilitation_inconnue"
        )
    authorize(principal, agent.organisation_id, level)
    return habilitation


def audit(state: RequestState, target: str, **details: Any) -> None:
    """The request's own event: what it acted upon, with ids and codes only."""
    state.audit.target = target[:128]
    state.audit.details = {key: value for key, value in details.items() if value is not None} or None


def paginate(session: Session, query: SelectOfScalar[Any], page: int, taille: int) -> tuple[list[Any], int]:
    total = session.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
    rows = session.exec(query.offset((page - 1) * taille).limit(taille)).all()
    return list(rows), int(total)


# JSON shapes ----------------------------------------------------------------------------------


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


@functools.cache
def served_apis() -> frozenset[str]:
    """The names grants and subscriptions use: each served spec file's stem."""
    return frozenset(name.removesuffix(".yaml") for name, _, _ in served_documents())


def check_api(api: str) -> None:
    if api not in served_apis():
        raise Refusal(
            400, "API_INCONNUE", "API inconnue : le nom d'une API servie par Relais est attendu", "api_inconnue"
        )


def parse_date(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Refusal(
            400, "DATE_INVALIDE", f"champ {field} : date AAAA-MM-JJ attendue", f"date_invalide:{field}"
        ) from None
