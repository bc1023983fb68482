"""Who may read the audit trail, and what they see: shared by the audit API's handlers.

An organisation's security officer (RSSI designation) sees the events and incidents of that
organisation; France Travail's CSSI sees every organisation's. Nobody else, whatever other
role they hold (an RGC, the hub operator through the API, a plain agent): deny by default.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connexion.lifecycle import ConnexionResponse
from sqlmodel import Session, col, select

from api.admin.admin_security import admin_refused, current_principal
from habilitations.models import RSSI
from habilitations.roles import Principal
from relais.core.tables import Organisation


class AccessRefused(Exception):
    def __init__(self, response: ConnexionResponse) -> None:
        super().__init__("refused")
        self.response = response


def visible_organisations(session: Session, principal: Principal) -> frozenset[str] | None:
    """Organisation codes the principal may audit; None for all (CSSI). Raises AccessRefused."""
    if principal.is_cssi:
        return None
    ids = sorted(organisation_id for role, organisation_id in principal.roles if role == RSSI)
    if not ids:
        raise AccessRefused(
            admin_refused(
                403,
                "ACCES_NON_AUTORISE",
                "Réservé au RSSI de l'organisation et au CSSI de France Travail",
                "role_insuffisant",
            )
        )
    codes = session.exec(select(Organisation.code).where(col(Organisation.id).in_(ids))).all()
    return frozenset(codes)


def current_visibility(session: Session) -> tuple[Principal, frozenset[str] | None]:
    principal = current_principal()
    return principal, visible_organisations(session, principal)


def check_organisation(visible: frozenset[str] | None, organisation: str | None) -> None:
    """Refuse a filter on an organisation the principal may not audit (rather than answer empty)."""
    if organisation is not None and visible is not None and organisation not in visible:
        raise AccessRefused(
            admin_refused(
                403,
                "ORGANISATION_HORS_PERIMETRE",
                "Organisation hors de votre périmètre : un RSSI ne voit que sa propre organisation",
                "organisation_hors_perimetre",
            )
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
