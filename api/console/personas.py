"""Demo personas: log in as a typical user of each role, for the demo and local trials only.

Refused unless ``RELAIS_CONSOLE_PERSONAS=1`` is set, and never on a PostgreSQL database that
was given its own keys (a real deployment): there, only ProConnect logs people in. The
persona's agent and designation are created on first use in the organisation the demo and
test datasets both have; the login is audited like any other, naming the persona.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, select

from habilitations import agents, designations
from habilitations.models import CSSI, INTEGRATEUR, OPERATEUR, RGC_TITULAIRE, RSSI, Agent
from habilitations.roles import Principal, current_roles
from relais.core.auditing import AuditRecorder
from relais.core.config import Settings
from relais.core.tables import Organisation

ENV_FLAG = "RELAIS_CONSOLE_PERSONAS"
# How the audit trail says the login was not a ProConnect one.
ACR = "persona-demo"


@dataclass(frozen=True)
class Persona:
    key: str
    libelle: str
    organisation: str
    identifiant: str
    nom: str
    prenom: str
    role: str | None


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "rgc-cd33",
        "RGC du Département de la Gironde",
        "CD33",
        "RGC-CD33",
        "Durand",
        "Camille",
        RGC_TITULAIRE,
    ),
    Persona("rssi-cd33", "RSSI du Département de la Gironde", "CD33", "RSSI-CD33", "Leroy", "Dominique", RSSI),
    Persona("cssi-ft", "CSSI de France Travail", "FT-NAQ", "CSSI-FT", "Morel", "Alex", CSSI),
    Persona("operateur", "Opérateur du hub", "FT-NAQ", "OPERATEUR-HUB", "Girard", "Sam", OPERATEUR),
    Persona(
        "integrateur-cd33",
        "Intégrateur du Département de la Gironde",
        "CD33",
        "INTEG-CD33",
        "Bernard",
        "Lou",
        INTEGRATEUR,
    ),
)
BY_KEY = {persona.key: persona for persona in PERSONAS}
# Who the audit trail says created the personas' accounts and roles.
_PROVISIONER = Principal(
    agent_id=None, organisation_id=None, organisation=None, roles=frozenset(), libelle="console:personas-demo"
)


def enabled(settings: Settings) -> bool:
    if os.environ.get(ENV_FLAG) != "1":
        return False
    # A PostgreSQL database given its keys is a deployment: personas would be a back door.
    postgresql = settings.resolved_database_url.startswith("postgresql")
    return not (postgresql and not settings.may_generate_dev_keys)


def provision(
    session: Session, persona: Persona, now: datetime, *, recorder: AuditRecorder, request_id: str
) -> tuple[int, str] | None:
    """The persona's agent id and organisation code; its agent and role are created when
    missing, through the domain's own (audited) state changes, by the hub operator."""
    organisation = session.exec(select(Organisation).where(Organisation.code == persona.organisation)).first()
    if organisation is None or organisation.id is None:
        return None
    agent = session.exec(
        select(Agent).where(
            Agent.organisation_id == organisation.id, Agent.client_id == "", Agent.identifiant == persona.identifiant
        )
    ).first()
    if agent is None:
        agent = agents.create_agent(
            session,
            _PROVISIONER,
            organisation_id=organisation.id,
            identifiant=persona.identifiant,
            nom=persona.nom,
            prenom=persona.prenom,
            statut_emploi="fonctionnaire",
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
    assert agent.id is not None
    if persona.role is not None and (persona.role, organisation.id) not in current_roles(session, agent.id, now):
        designations.designate(
            session,
            _PROVISIONER,
            organisation_id=organisation.id,
            agent_id=agent.id,
            role=persona.role,
            acte_engagement_le=date(2025, 9, 1) if persona.role == RGC_TITULAIRE else None,
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
    return agent.id, organisation.code
