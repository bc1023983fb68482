"""The rows a state change acts on, found (and locked) or refused as unknown.

Rows that are about to move are read ``with_for_update()``: two administrators acting on the
same agent or grant at once are serialised, and the second one sees the first one's change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlmodel import Session, SQLModel, select

from habilitations.models import Agent, Designation, Habilitation
from habilitations.refusals import TransitionRefused
from relais.core.refusals import RefusalKind
from relais.core.tables import Client, Organisation

Row = TypeVar("Row", bound=SQLModel)


def organisation(session: Session, organisation_id: int) -> Organisation:
    found = session.get(Organisation, organisation_id)
    if found is None:
        raise TransitionRefused(RefusalKind.UNKNOWN, "organisation_inconnue", "Organisation inconnue")
    return found


def client(session: Session, client_id: str) -> Client:
    found = session.exec(select(Client).where(Client.client_id == client_id)).first()
    if found is None:
        raise TransitionRefused(RefusalKind.UNKNOWN, "client_inconnu", "Client inconnu")
    return found


def locked(session: Session, model: type[Row], key: Any, code: str, message: str) -> Row:
    primary = getattr(model, "id")  # noqa: B009 - every habilitations table is keyed by ``id``
    row = session.exec(select(model).where(primary == key).with_for_update()).first()
    if row is None:
        raise TransitionRefused(RefusalKind.UNKNOWN, code, message)
    return row


def locked_agent(session: Session, agent_id: int) -> Agent:
    return locked(session, Agent, agent_id, "agent_inconnu", "Agent inconnu")


def locked_grant(session: Session, habilitation_id: str) -> tuple[Habilitation, Agent, Organisation]:
    """The grant, locked, with its agent and the agent's organisation."""
    grant = locked(session, Habilitation, habilitation_id, "habilitation_inconnue", "Habilitation inconnue")
    agent = session.get(Agent, grant.agent_id)
    assert agent is not None
    return grant, agent, organisation(session, agent.organisation_id)


def agent_by_identifiant(session: Session, organisation_id: int, client_id: str, identifiant: str) -> Agent | None:
    """The organisation's agent of that identifiant: a person (``client_id`` "") or a client's identity."""
    return session.exec(
        select(Agent).where(
            Agent.organisation_id == organisation_id, Agent.client_id == client_id, Agent.identifiant == identifiant
        )
    ).first()


def current_designations(session: Session, organisation_id: int, now: datetime) -> list[Designation]:
    """The organisation's designations in force at ``now``."""
    rows = session.exec(select(Designation).where(Designation.organisation_id == organisation_id)).all()
    return [row for row in rows if in_force(row, now)]


def designations_of(session: Session, agent: Agent, now: datetime) -> list[Designation]:
    """The agent's designations in force at ``now``."""
    rows = session.exec(select(Designation).where(Designation.agent_id == agent.id)).all()
    return [row for row in rows if in_force(row, now)]


def in_force(designation: Designation, now: datetime) -> bool:
    return utc(designation.debut) <= now and (designation.fin is None or utc(designation.fin) > now)


def utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
