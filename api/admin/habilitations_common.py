"""What every handler of the habilitations admin API shares: roles, refusals, the audit ports.

Authorisation is decided here per organisation, from the principal re-read on this request:

- ``LIRE``: the organisation's RGC (titular or deputy) and RSSI, France Travail's CSSI, the
  hub operator;
- ``GERER``: the organisation's RGC, the CSSI and the operator (the domain's state changes
  then apply the finer rules: separation of duties, who designates whom...);
- ``REVOIR`` (review campaigns): the organisation's RGC and the operator;
- ``SECURITE`` (overrides, subscriptions): the CSSI and the operator.

Every refusal, this layer's or the domain's (``habilitations.refusals.HabilitationRefused``),
is a ``{codeHttp, codeErreur, message}`` body (status from its kind, ``api.refusals``) and an
audit reason code; the request's event names its target and value-free details. The domain
writes its transitions' events through the services' ``audit_recorder`` under the request's
id, and reads the journal through ``LOOKUP``. The JSON shapes are the domain's
(``habilitations.views``).
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
from api.refusals import status_of
from audit.lookup import JournalLookup
from habilitations.models import Agent, Habilitation
from habilitations.policy import served_apis
from habilitations.refusals import HabilitationRefused
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

LIRE = "lire"
GERER = "gerer"
REVOIR = "revoir"
SECURITE = "securite"

# The journal as the habilitations domain reads it (the kernel's ``AuditLookup``, stateless);
# it writes through the services' ``audit_recorder``.
LOOKUP = JournalLookup()

P = ParamSpec("P")


def admin_action(handler: Callable[P, ConnexionResponse]) -> Callable[P, ConnexionResponse]:
    """Turn the refusals of this layer and of the domain into contract errors.

    Codes are answered upper case (the state changes' own codes are lower case).
    """

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> ConnexionResponse:
        try:
            return handler(*args, **kwargs)
        except HabilitationRefused as refused:
            return admin_refused(status_of(refused), refused.code.upper(), refused.message, refused.reason)

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
        raise HabilitationRefused(RefusalKind.FORBIDDEN, "ROLE_INSUFFISANT", _MESSAGES[level], reason=f"role:{level}")


def organisation_by_code(session: Session, code: str) -> Organisation:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if organisation is None or organisation.id is None:
        raise HabilitationRefused(RefusalKind.UNKNOWN, "ORGANISATION_INCONNUE", "Aucune organisation ne porte ce code")
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
        raise HabilitationRefused(RefusalKind.UNKNOWN, "AGENT_INCONNU", "Aucun agent ne porte cet identifiant")
    authorize(principal, agent.organisation_id, level)
    return agent


def habilitation_for(session: Session, principal: Principal, habilitation_id: str, level: str) -> Habilitation:
    attempted(f"habilitation:{habilitation_id}")
    habilitation = session.get(Habilitation, habilitation_id)
    agent = session.get(Agent, habilitation.agent_id) if habilitation is not None else None
    if habilitation is None or agent is None:
        raise HabilitationRefused(
            RefusalKind.UNKNOWN, "HABILITATION_INCONNUE", "Aucune habilitation ne porte cet identifiant"
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


def check_api(api: str) -> None:
    if api not in served_apis():
        raise HabilitationRefused(
            RefusalKind.INVALID, "API_INCONNUE", "API inconnue : le nom d'une API servie par Relais est attendu"
        )


def parse_date(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HabilitationRefused(
            RefusalKind.INVALID,
            "DATE_INVALIDE",
            f"champ {field} : date AAAA-MM-JJ attendue",
            reason=f"date_invalide:{field}",
        ) from None
