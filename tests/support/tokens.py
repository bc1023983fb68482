"""Credentials as the partners and the agents get them: through the app, never forged."""

from __future__ import annotations

from datetime import datetime

from starlette.testclient import TestClient

from api.services import Services
from habilitations.models import Agent
from relais.core.admin_tokens import issue_admin_token
from relais.core.tables import Organisation
from tests.support.people import Person
from tests.support.scopes import AGENT, INFOS_SCOPES, RECHERCHE, RECHERCHE_SCOPES, SECRET, STATUT_SCOPES, TOKEN_URL

DEFAULT_SCOPE = f"{RECHERCHE_SCOPES} {INFOS_SCOPES} {STATUT_SCOPES}"


def partner_token(client: TestClient, client_id: str = "cd33", scope: str = DEFAULT_SCOPE) -> str:
    """An access token from the token endpoint (client credentials, the dataset's secret)."""
    response = client.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": SECRET,
            "scope": scope,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def agent_headers(token: str, **extra: str) -> dict[str, str]:
    """The bearer token and the headers naming the calling agent (``AGENT``)."""
    return {"Authorization": f"Bearer {token}", **AGENT, **extra}


def admin_token(services: Services, agent_id: int, *, acr: str, auth_time: datetime) -> str:
    """An admin API token for an agent, as the ProConnect login issues it."""
    with services.database.session() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None, f"no agent {agent_id}"
        organisation = session.get(Organisation, agent.organisation_id)
        assert organisation is not None
    return issue_admin_token(
        services.keys,
        services.settings,
        now=services.clock(),
        agent_id=agent_id,
        organisation=organisation.code,
        acr=acr,
        auth_time=auth_time,
    )


def jeton_usager(client: TestClient, person: Person, client_id: str = "cd33") -> str:
    """The jeton a search by France Travail number returns for ``person``."""
    token = partner_token(client, client_id)
    response = client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": person.numero},
        headers=agent_headers(token),
    )
    assert response.json()["codeRetour"] == "S001", response.text
    return str(response.json()["jetonUsager"])
