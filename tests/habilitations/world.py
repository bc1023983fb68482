"""Helpers of hab-core's tests: agents, grants and calls on the e2e hub, through the real code.

Agents and grants are made with the domain's state changes (``habilitations.agents``,
``grants``, ``designations``...) acting as the operator (or as the principal given),
committed like the admin API and the CLI commit them.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
from sqlmodel import Session, col, select

from audit.journal import JournalRecorder
from audit.lookup import JournalLookup
from audit.models import AuditEvent
from habilitations import agents, designations, grants
from habilitations.models import RGC_TITULAIRE, Agent
from habilitations.roles import Principal, current_roles
from relais.core.tables import Organisation
from tests.support.hub import Hub
from tests.support.people import Person
from tests.support.scopes import INFOS, RECHERCHE, RECHERCHE_SCOPES, STATUT

OPERATOR = Principal.command_line()
# The audit domain, handed to the habilitations domain as the admin API and the CLI hand it.
RECORDER = JournalRecorder()
LOOKUP = JournalLookup()
RECHERCHE_API = "rechercher-usager-v2"
INFOS_API = "informations-administratives-v1"
STATUT_API = "statut-usager-v2"
API_SCOPES = {
    RECHERCHE_API: RECHERCHE_SCOPES.split(),
    INFOS_API: ["api_informations-administrativesv1", "informationsadministrativesusager", "profil_accedant"],
    STATUT_API: ["api_contrat-usagerv2", "statutcontratusager", "profil_accedant"],
}


def organisation_id(session: Session, code: str) -> int:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).one()
    assert organisation.id is not None
    return organisation.id


def add_agent(hub: Hub, identifiant: str, organisation: str = "CD33", statut: str = "contractuel") -> int:
    with hub.services.database.transaction() as session:
        agent = agents.create_agent(
            session,
            OPERATOR,
            organisation_id=organisation_id(session, organisation),
            identifiant=identifiant,
            nom=f"Nom {identifiant}",
            statut_emploi=statut,
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
        assert agent.id is not None
        return agent.id


def add_rgc(hub: Hub, identifiant: str, organisation: str = "CD33", role: str = RGC_TITULAIRE) -> int:
    agent_id = add_agent(hub, identifiant, organisation, statut="fonctionnaire")
    with hub.services.database.transaction() as session:
        designations.designate(
            session,
            OPERATOR,
            organisation_id=organisation_id(session, organisation),
            agent_id=agent_id,
            role=role,
            acte_engagement_le=date(2025, 1, 6),
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    return agent_id


def principal(hub: Hub, agent_id: int) -> Principal:
    """The agent as the admin API sees them (their current designations)."""
    with hub.services.database.session() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        organisation = session.get(Organisation, agent.organisation_id)
        assert organisation is not None
        return Principal(
            agent_id=agent_id,
            organisation_id=agent.organisation_id,
            organisation=organisation.code,
            roles=current_roles(session, agent_id, hub.clock.now),
        )


def grant(hub: Hub, agent_id: int, api: str = RECHERCHE_API, scopes: list[str] | None = None, **extra: Any) -> str:
    actor = extra.pop("actor", OPERATOR)
    with hub.services.database.transaction() as session:
        habilitation = grants.grant_habilitation(
            session,
            actor,
            agent_id=agent_id,
            api=api,
            scopes=scopes or API_SCOPES[api],
            finalite="Accompagnement RSA",
            now=hub.clock.now,
            **extra,
            recorder=RECORDER,
            request_id=request_id(),
        )
        return habilitation.id


def request_id() -> str:
    """A request id of its own for each action, as the command line makes one per command."""
    return f"cli-{uuid.uuid4().hex}"


def act(hub: Hub, function: Any, *args: Any, actor: Principal = OPERATOR, **kwargs: Any) -> Any:
    """Run one state change of the domain in its own committed transaction."""
    with hub.services.database.transaction() as session:
        return function(session, actor, *args, now=hub.clock.now, recorder=RECORDER, request_id=request_id(), **kwargs)


def search(hub: Hub, identifiant: str, person: Person, client: str = "cd33") -> httpx.Response:
    headers = {**hub.headers(hub.token(client, RECHERCHE_SCOPES)), "pa-identifiant-agent": identifiant}
    return hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": person.numero}, headers=headers
    )


def read(hub: Hub, identifiant: str, person: Person, what: str = "infos", client: str = "cd33") -> httpx.Response:
    """Informations administratives or Statut usager of ``person``, with a jeton from AGT-0042."""
    jeton = hub.jeton(person, client)
    headers = {**hub.headers(hub.token(client)), "pa-identifiant-agent": identifiant, "ft-jeton-usager": jeton}
    return hub.client.get(INFOS if what == "infos" else STATUT, headers=headers)


def events(hub: Hub, since: int = 0) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.seq > since).order_by(col(AuditEvent.seq))).all())


def last_seq(hub: Hub) -> int:
    found = events(hub)
    return found[-1].seq if found else 0


def agent_row(hub: Hub, agent_id: int) -> Agent:
    with hub.services.database.session() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        return agent
