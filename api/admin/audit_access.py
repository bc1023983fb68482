"""Who may read the audit trail, and what they see: shared by the audit API's handlers.

An organisation's security officer (RSSI designation) sees the events and incidents of that
organisation; France Travail's CSSI sees every organisation's. Nobody else, whatever other
role they hold (an RGC, the hub operator through the API, a plain agent): deny by default.

Refusals, here and in the audit domain, are ``audit.refusals.AuditRefused``; the handlers
catch them and answer with ``refused_answer``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connexion.lifecycle import ConnexionResponse
from sqlmodel import Session, col, select

from api.admin.admin_security import current_principal
from api.refusals import refusal_response
from audit.refusals import AuditRefused, RefusalKind
from habilitations.models import RSSI
from habilitations.roles import Principal
from relais.core.refusals import Refused
from relais.core.tables import Organisation

# The audited reason of a refusal is its code in lower case, except where the journal has
# always named it otherwise (detection rules and reports read these reasons).
_REASONS = {"ACCES_NON_AUTORISE": "role_insuffisant"}


def refused_answer(refused: Refused) -> ConnexionResponse:
    """The audit API's answer to a refusal: ``{codeHttp, codeErreur, message}``, audited."""
    return refusal_response(refused, reason=_REASONS.get(refused.code, refused.code.lower()))


def visible_organisations(session: Session, principal: Principal) -> frozenset[str] | None:
    """Organisation codes the principal may audit; None for all (CSSI). Raises AuditRefused."""
    if principal.is_cssi:
        return None
    ids = sorted(organisation_id for role, organisation_id in principal.roles if role == RSSI)
    if not ids:
        raise AuditRefused(
            RefusalKind.FORBIDDEN,
            "ACCES_NON_AUTORISE",
            "Réservé au RSSI de l'organisation et au CSSI de France Travail",
        )
    codes = session.exec(select(Organisation.code).where(col(Organisation.id).in_(ids))).all()
    return frozenset(codes)


def current_visibility(session: Session) -> tuple[Principal, frozenset[str] | None]:
    principal = current_principal()
    return principal, visible_organisations(session, principal)


def check_organisation(visible: frozenset[str] | None, organisation: str | None) -> None:
    """Refuse a filter on an organisation the principal may not audit (rather than answer empty)."""
    if organisation is not None and visible is not None and organisation not in visible:
        raise AuditRefused(
            RefusalKind.FORBIDDEN,
            "ORGANISATION_HORS_PERIMETRE",
            "Organisation hors de votre périmètre : un RSSI ne voit que sa propre organisation",
        )


def author_of(principal: Principal) -> str:
    """How an incident's history names who acted: the agent's record id, never their name."""
    return f"agent:{principal.agent_id}" if principal.agent_id is not None else (principal.libelle or "inconnu")


def parse_moment(value: str | None) -> datetime | None:
    """An ISO 8601 date-time from the body (UTC when no offset is given); ValueError if invalid."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
