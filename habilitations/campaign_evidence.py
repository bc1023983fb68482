"""What the RGC sees to decide on a grant: its evidence and its anomaly flags.

Last use per scope comes from the audit journal's allowed calls made under the grant, and the
security overrides since the previous campaign from its block events: both are read through
the ``AuditLookup`` port, the journal's tables being the audit domain's. The rest (state,
last login, grant age, justification, subscription) is the domain's own. Codes and dates
only: no personal data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from habilitations.campaign_models import CampagneRevue
from habilitations.inactivity import is_overdue
from habilitations.models import ACTIF, BLOQUE, SUSPENDU_INACTIVITE, Agent, Habilitation, Souscription
from habilitations.overrides import security_overrides
from habilitations.views import iso
from relais.core.auditing import AuditLookup
from relais.core.tables import Organisation

# Grants still in force, hence under review (revoked and deleted ones are history).
ETATS_REVUS = (ACTIF, SUSPENDU_INACTIVITE, BLOQUE)
SCOPE_UNUSED_AFTER = timedelta(days=90)

# Anomaly flags (codes, shown to the RGC and kept in the report).
DEVRAIT_ETRE_SUSPENDU = "DEVRAIT_ETRE_SUSPENDU"
SCOPE_INUTILISE_90_JOURS = "SCOPE_INUTILISE_90_JOURS"
HORS_SOUSCRIPTION = "HORS_SOUSCRIPTION"
SANS_JUSTIFICATION = "SANS_JUSTIFICATION"
BLOCAGE_SECURITE = "BLOCAGE_SECURITE"


def last_use_per_scope(
    session: Session, habilitation: Habilitation, *, lookup: AuditLookup
) -> dict[str, datetime | None]:
    """When each scope of the grant was last used by an allowed call made under it."""
    # The journal groups by scope set: a busy agent's year of calls is a handful of rows here.
    by_scopes = lookup.last_use_by_scopes(session, habilitation_id=habilitation.id)
    last: dict[str, datetime | None] = dict.fromkeys(habilitation.scopes)
    for scopes, occurred_at in by_scopes.items():
        for scope in scopes.split():
            if scope in last:
                seen = last[scope]
                if seen is None or occurred_at > seen:
                    last[scope] = occurred_at
    return last


def subscribed_scopes(session: Session, organisation_id: int) -> dict[str, set[str]]:
    rows = session.exec(select(Souscription).where(Souscription.organisation_id == organisation_id)).all()
    return {row.api: set(row.scopes) for row in rows}


def override_targets(
    session: Session, organisation_id: int, since: datetime | None, *, lookup: AuditLookup
) -> set[str]:
    """Targets (``agent:<id>``, ``habilitation:<id>``) of security overrides since a date."""
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    overrides = security_overrides(session, organisation.code, since, lookup=lookup)
    return {action.target for action in overrides if action.target}


def evidence(
    session: Session,
    agent: Agent,
    habilitation: Habilitation,
    *,
    subscriptions: dict[str, set[str]],
    overrides: set[str],
    now: datetime,
    lookup: AuditLookup,
) -> dict[str, Any]:
    """What the RGC sees to decide on one grant (codes and dates: no personal data)."""
    last_use = last_use_per_scope(session, habilitation, lookup=lookup)
    unused_since = now - SCOPE_UNUSED_AFTER
    unused = sorted(
        scope
        for scope, used in last_use.items()
        if (used is None and habilitation.accordee_le <= unused_since) or (used is not None and used <= unused_since)
    )
    outside = sorted(set(habilitation.scopes) - subscriptions.get(habilitation.api, set()))
    anomalies: list[str] = []
    if agent.etat == ACTIF and is_overdue(agent, now):
        anomalies.append(DEVRAIT_ETRE_SUSPENDU)
    if unused:
        anomalies.append(SCOPE_INUTILISE_90_JOURS)
    if outside:
        anomalies.append(HORS_SOUSCRIPTION)
    if not (habilitation.justification or "").strip():
        anomalies.append(SANS_JUSTIFICATION)
    blocked = BLOQUE in (agent.etat, habilitation.etat)
    if blocked or {f"agent:{agent.id}", f"habilitation:{habilitation.id}"} & overrides:
        anomalies.append(BLOCAGE_SECURITE)
    return {
        "etatAgent": agent.etat,
        "etatHabilitation": habilitation.etat,
        "derniereUtilisationParScope": {scope: iso(used) for scope, used in sorted(last_use.items())},
        "derniereConnexion": iso(agent.derniere_connexion),
        "derniereConnexionAcr": agent.derniere_connexion_acr,
        "derniereActivite": iso(agent.derniere_activite),
        "accordeeLe": iso(habilitation.accordee_le),
        "ancienneteJours": max((now - habilitation.accordee_le).days, 0),
        "justification": habilitation.justification,
        "scopesInutilises": unused,
        "scopesHorsSouscription": outside,
        "anomalies": anomalies,
    }


def grants_under_review(session: Session, organisation_id: int) -> list[tuple[Agent, Habilitation]]:
    rows = session.exec(
        select(Agent, Habilitation)
        .join(Habilitation, col(Habilitation.agent_id) == col(Agent.id))
        .where(Agent.organisation_id == organisation_id, col(Habilitation.etat).in_(ETATS_REVUS))
        .order_by(col(Agent.identifiant), col(Agent.id), col(Habilitation.api), col(Habilitation.id))
    ).all()
    return [(agent, habilitation) for agent, habilitation in rows]


def previous_campaign_at(session: Session, organisation_id: int, before: datetime | None = None) -> datetime | None:
    query = select(CampagneRevue.ouverte_le).where(CampagneRevue.organisation_id == organisation_id)
    if before is not None:
        query = query.where(CampagneRevue.ouverte_le < before)
    return session.exec(query.order_by(col(CampagneRevue.ouverte_le).desc()).limit(1)).first()


def findings(
    session: Session, organisation_id: int, now: datetime, *, lookup: AuditLookup
) -> list[tuple[Agent, Habilitation, dict[str, Any]]]:
    """Current anomalies of the organisation's grants in force, the campaign's flags live."""
    subscriptions = subscribed_scopes(session, organisation_id)
    since = previous_campaign_at(session, organisation_id)
    overrides = override_targets(session, organisation_id, since, lookup=lookup)
    found = []
    for agent, habilitation in grants_under_review(session, organisation_id):
        proof = evidence(
            session, agent, habilitation, subscriptions=subscriptions, overrides=overrides, now=now, lookup=lookup
        )
        if proof["anomalies"]:
            found.append((agent, habilitation, proof))
    return found
