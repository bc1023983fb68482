"""Helpers for the audit API tests: security officers as rows in the test database, and
journal events produced by real partner API calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from audit.models import AuditEvent
from habilitations.models import CSSI, RGC_TITULAIRE, RSSI, Agent, Designation
from relais.core.tables import Organisation
from tests.support.hub import Hub
from tests.support.people import Person
from tests.support.scopes import INFOS

AUDIT = "/relais/audit/v1"


def agent_with_role(hub: Hub, organisation: str, role: str | None, identifiant: str) -> int:
    """An active agent of ``organisation`` holding ``role`` there (None: no designation)."""
    with hub.services.database.transaction() as session:
        org = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        assert org.id is not None
        existing = session.exec(
            select(Agent).where(Agent.organisation_id == org.id, Agent.identifiant == identifiant)
        ).first()
        if existing is not None and existing.id is not None:
            return existing.id
        agent = Agent(organisation_id=org.id, identifiant=identifiant, nom="Agent", prenom="Test")
        session.add(agent)
        session.flush()
        assert agent.id is not None
        if role is not None:
            session.add(
                Designation(
                    organisation_id=org.id,
                    agent_id=agent.id,
                    role=role,
                    debut=hub.clock.now - timedelta(days=1),
                )
            )
        return agent.id


def officer_headers(hub: Hub, organisation: str, role: str | None, identifiant: str) -> dict[str, str]:
    token = hub.admin_token(agent_with_role(hub, organisation, role, identifiant))
    return {"Authorization": f"Bearer {token}"}


def rssi(hub: Hub, organisation: str = "CD33") -> dict[str, str]:
    return officer_headers(hub, organisation, RSSI, f"RSSI-{organisation}")


def cssi(hub: Hub) -> dict[str, str]:
    return officer_headers(hub, "FT-NAQ", CSSI, "CSSI-FT")


def rgc(hub: Hub, organisation: str = "CD33") -> dict[str, str]:
    return officer_headers(hub, organisation, RGC_TITULAIRE, f"RGC-{organisation}")


def read_file(hub: Hub, person: Person, client_id: str = "cd33", **headers: str) -> None:
    """Find the usager, then read its administrative data: two audited partner calls."""
    jeton = hub.jeton(person, client_id)
    response = hub.client.get(INFOS, headers=hub.headers(hub.token(client_id), **{"ft-jeton-usager": jeton, **headers}))
    assert response.status_code == 200, response.text


def search(hub: Hub, headers: dict[str, str], **body: Any) -> Any:
    return hub.client.post(f"{AUDIT}/evenements/recherche", json=body, headers=headers)


def events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all())
