"""The decision for one partner call: which agent, under which habilitation, or why not.

Deny by default. A call is allowed only when ``pa-identifiant-agent`` names an active agent
of the calling client's organisation (a person through any client of it, a technical
identity only through its own client), whose inactivity deadline has not passed, holding an
active, unexpired habilitation for the operation's API that covers every scope the operation
requires, within the organisation's subscription and the client's own scopes. Everything is
re-read on each call: a change applies on the next request.

A client that existed before enforcement may hold a transitional identity (``*``): calls
whose identifiant matches no agent are then made under it, until it is revoked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlmodel import Session, col, select

from habilitations.agent_states import suspend_for_inactivity
from habilitations.inactivity import inactivity_due_date, is_overdue, record_activity
from habilitations.models import ACTIF, TRANSITION_IDENTIFIANT, Agent, Habilitation, Souscription
from relais.core.auditing import AuditRecorder
from relais.core.french_dates import local_date
from relais.core.tables import Client
from specs import load_document, served_documents


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # A stable code for the audit trail when refused: agent_inconnu, agent_<etat>,
    # agent_inactivite, habilitation_absente, habilitation_expiree, habilitation_insuffisante,
    # hors_souscription, client_scope_insuffisant.
    reason: str | None = None
    agent_id: int | None = None
    habilitation_id: str | None = None
    scopes: tuple[str, ...] = ()
    finalite: str | None = None
    # True when the suspension for inactivity was decided by this very call: the caller
    # must keep that transition even though the call is refused.
    suspended_now: bool = False

    @classmethod
    def deny(cls, reason: str, agent_id: int | None = None, *, suspended_now: bool = False) -> Decision:
        return cls(False, reason, agent_id, suspended_now=suspended_now)


def find_agent(session: Session, client: Client, identifiant: str) -> Agent | None:
    """The client's technical identity of that name, else the organisation's person."""
    rows = session.exec(
        select(Agent).where(
            Agent.organisation_id == client.organisation_id,
            Agent.identifiant == identifiant,
            col(Agent.client_id).in_((client.client_id, "")),
        )
    ).all()
    rows = sorted(rows, key=lambda agent: agent.client_id == "")
    return rows[0] if rows else None


def decide(
    session: Session,
    *,
    client: Client,
    identifiant: str,
    api: str,
    required_scopes: Iterable[str],
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Decision:
    """Apply the rules; an allowed call records the agent's activity in ``session``.

    An agent found past their inactivity deadline is suspended there and then: that
    transition is audited through ``recorder`` under the call's own ``request_id``.
    """
    required = set(required_scopes)
    agent = find_agent(session, client, identifiant) if identifiant != TRANSITION_IDENTIFIANT else None
    if agent is None:
        agent = _transitional(session, client)
        if agent is None:
            return Decision.deny("agent_inconnu")
    assert agent.id is not None
    if agent.etat != ACTIF:
        return Decision.deny(f"agent_{agent.etat}", agent.id)
    if is_overdue(agent, now):
        suspend_for_inactivity(
            session, agent.id, due=inactivity_due_date(agent), now=now, recorder=recorder, request_id=request_id
        )
        return Decision.deny("agent_inactivite", agent.id, suspended_now=True)
    grants = session.exec(
        select(Habilitation).where(
            Habilitation.agent_id == agent.id, Habilitation.api == api, Habilitation.etat == ACTIF
        )
    ).all()
    today = local_date(now)
    current = [grant for grant in grants if grant.date_fin is None or grant.date_fin >= today]
    if not current:
        return Decision.deny("habilitation_expiree" if grants else "habilitation_absente", agent.id)
    grant = next((grant for grant in current if required <= set(grant.scopes)), None)
    if grant is None:
        return Decision.deny("habilitation_insuffisante", agent.id)
    subscription = session.exec(
        select(Souscription).where(Souscription.organisation_id == agent.organisation_id, Souscription.api == api)
    ).first()
    if subscription is None or not required <= set(subscription.scopes):
        return Decision.deny("hors_souscription", agent.id)
    if not required <= set(client.scopes):
        return Decision.deny("client_scope_insuffisant", agent.id)
    # Inactivity counts in days: one write per agent and day spares a row lock on every call.
    if agent.derniere_activite is None or local_date(agent.derniere_activite) < today:
        record_activity(session, agent, now)
    return Decision(
        True,
        agent_id=agent.id,
        habilitation_id=grant.id,
        scopes=tuple(sorted(required)),
        finalite=grant.finalite,
    )


@cache
def served_apis() -> frozenset[str]:
    """The names grants and subscriptions use: each served spec file's stem."""
    return frozenset(name.removesuffix(".yaml") for name, _, _ in served_documents())


@cache
def api_scopes() -> dict[str, frozenset[str]]:
    """Each served API's name (its spec file's stem) → every scope its operations require.

    Habilitations and subscriptions name APIs this way; the migration of existing clients
    and the demo derive their subscriptions from it.
    """
    found: dict[str, frozenset[str]] = {}
    for name, _, _ in served_documents():
        document = load_document(name)
        scopes: set[str] = set()
        for item in (document.get("paths") or {}).values():
            for operation in item.values():
                if not isinstance(operation, dict):
                    continue
                for requirement in operation.get("security") or []:
                    for required in requirement.values():
                        scopes.update(required)
        if scopes:
            # Also the scopes the API declares but does not require (France Travail's
            # profil_accedant on Informations administratives, Relais' guessed
            # contratengagement): a subscription and a habilitation may still name them.
            scopes.update(_declared_scopes(document))
            found[name.removesuffix(".yaml")] = frozenset(scopes)
    return found


def _declared_scopes(document: dict[str, Any]) -> set[str]:
    declared: set[str] = set()
    for scheme in ((document.get("components") or {}).get("securitySchemes") or {}).values():
        for flow in ((scheme or {}).get("flows") or {}).values():
            declared.update((flow or {}).get("scopes") or {})
    return declared


def subscribable(held: Iterable[str]) -> dict[str, list[str]]:
    """API name → the scopes of it that ``held`` (e.g. an organisation's clients' scopes) cover,
    for the APIs whose technical scope (``api_...``) is held: the subscriptions those clients
    imply. Used by the migration of existing clients, the demo and the test dataset."""
    scopes = set(held)
    found: dict[str, list[str]] = {}
    for api, needed in sorted(api_scopes().items()):
        technical = {scope for scope in needed if scope.startswith("api_")}
        if technical and technical <= scopes:
            found[api] = sorted(needed & scopes)
    return found


def _transitional(session: Session, client: Client) -> Agent | None:
    identity = session.exec(
        select(Agent).where(
            Agent.organisation_id == client.organisation_id,
            Agent.client_id == client.client_id,
            Agent.identifiant == TRANSITION_IDENTIFIANT,
        )
    ).first()
    # A revoked transitional identity means the organisation moved on: unknown agents are refused.
    return identity if identity is not None and identity.etat == ACTIF else None
