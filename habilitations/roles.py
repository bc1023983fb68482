"""Who is acting on the admin APIs, and which roles they hold where.

Roles come from designations only, re-read on every call: ending a designation takes effect
on the next request. A role is an administrative power; it never opens beneficiary data,
which only habilitations do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, or_, select

from habilitations.models import (
    ACTIF,
    CSSI,
    OPERATEUR,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    RSSI,
    Agent,
    Designation,
)
from relais.core.tables import Organisation


@dataclass(frozen=True)
class Principal:
    """An authenticated agent of the admin APIs, or the operator's command line."""

    agent_id: int | None
    organisation_id: int | None
    organisation: str | None
    # (role, organisation id) pairs of the agent's current designations.
    roles: frozenset[tuple[str, int]]
    acr: str | None = None
    auth_time: datetime | None = None
    # How the audit trail names the actor when there is no agent: "cli:operateur".
    libelle: str | None = None

    @classmethod
    def command_line(cls) -> Principal:
        """The hub operator at the command line: the machine's own administrator."""
        return cls(agent_id=None, organisation_id=None, organisation=None, roles=frozenset(), libelle="cli:operateur")

    @property
    def label(self) -> str:
        """How records and the audit trail name the actor: ``agent:<id>``, or its ``libelle``."""
        if self.agent_id is not None:
            return f"agent:{self.agent_id}"
        return self.libelle or "cli:operateur"

    @property
    def is_command_line(self) -> bool:
        return self.agent_id is None

    @property
    def is_operator(self) -> bool:
        return self.is_command_line or any(role == OPERATEUR for role, _ in self.roles)

    @property
    def is_cssi(self) -> bool:
        return any(role == CSSI for role, _ in self.roles)

    def has_role(self, role: str, organisation_id: int) -> bool:
        return (role, organisation_id) in self.roles

    def is_rgc_of(self, organisation_id: int) -> bool:
        return self.has_role(RGC_TITULAIRE, organisation_id) or self.has_role(RGC_SUPPLEANT, organisation_id)

    def is_security_officer_of(self, organisation_id: int) -> bool:
        return self.is_cssi or self.has_role(RSSI, organisation_id)

    def authenticated_within(self, now: datetime, max_age: timedelta) -> bool:
        """A recent login, as sensitive actions require (the command line always is)."""
        if self.is_command_line:
            return True
        return self.auth_time is not None and now - self.auth_time <= max_age


def current_roles(session: Session, agent_id: int, now: datetime) -> frozenset[tuple[str, int]]:
    designations = session.exec(
        select(Designation).where(
            Designation.agent_id == agent_id,
            Designation.debut <= now,
            or_(col(Designation.fin).is_(None), col(Designation.fin) > now),
        )
    ).all()
    return frozenset((designation.role, designation.organisation_id) for designation in designations)


def principal_for(
    session: Session, agent_id: int, now: datetime, *, acr: str | None, auth_time: datetime | None
) -> Principal | None:
    """The principal of an active agent, or None (unknown, suspended, blocked, revoked...)."""
    agent = session.get(Agent, agent_id)
    if agent is None or agent.etat != ACTIF:
        return None
    organisation = session.get(Organisation, agent.organisation_id)
    if organisation is None:
        return None
    return Principal(
        agent_id=agent.id,
        organisation_id=organisation.id,
        organisation=organisation.code,
        roles=current_roles(session, agent_id, now),
        acr=acr,
        auth_time=auth_time,
    )
