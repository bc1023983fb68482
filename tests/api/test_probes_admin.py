"""Probes of the admin APIs (issue 14): an agent's valid admin token on an unknown path or
method is audited like a partner's probe; anonymous, forged or partner-token probes are not."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from audit.models import AuditEvent
from habilitations.models import RSSI
from tests.audit.audit_api_support import agent_with_role
from tests.support.hub import Hub

# An unknown path and a known path called with a method it does not have, per admin API.
PROBES = [
    ("get", "/relais/habilitations/v1/organisations/CD33/inconnu", 404),
    ("delete", "/relais/habilitations/v1/organisations/CD33/souscriptions", 405),
    ("get", "/relais/audit/v1/evenements/tout", 404),
    ("get", "/relais/audit/v1/evenements/recherche", 405),
    ("get", "/relais/connecteurs/v1/secrets", 404),
    ("delete", "/relais/connecteurs/v1/connecteurs", 405),
    ("get", "/relais/connexion/v1/jetons", 404),
    ("post", "/relais/connexion/v1/moi", 405),
]


def _events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all())


@pytest.mark.parametrize(("method", "path", "status"), PROBES)
def test_an_agent_probing_an_admin_api_is_audited(hub: Hub, method: str, path: str, status: int) -> None:
    agent_id = agent_with_role(hub, "CD33", RSSI, "RSSI-CD33")
    headers = {"Authorization": f"Bearer {hub.admin_token(agent_id)}"}
    before = len(_events(hub))
    response = hub.client.request(method.upper(), path, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["codeErreur"] == "RESSOURCE_INCONNUE"
    assert [
        (e.channel, e.operation, e.http_status, e.decision, e.reason, e.agent_id, e.client_id)
        for e in _events(hub)[before:]
    ] == [("admin-api", "unknown", status, "denied", "no_such_operation", agent_id, "relais-console")]


def test_anonymous_forged_or_partner_probes_of_an_admin_api_are_only_logged(hub: Hub) -> None:
    path = "/relais/habilitations/v1/organisations/CD33/inconnu"
    partner = hub.token()
    before = len(_events(hub))
    answers = [
        hub.client.get(path),
        hub.client.get(path, headers={"Authorization": "Bearer x.y.z"}),
        # A partner token is valid, but not for the admin APIs: it proves no agent.
        hub.client.get(path, headers=hub.headers(partner)),
        hub.client.delete("/relais/audit/v1/evenements/recherche", headers=hub.headers(partner)),
    ]
    assert [r.status_code for r in answers] == [404, 404, 404, 405]
    assert _events(hub)[before:] == []


def test_an_admin_token_does_not_make_a_partner_probe_audited(hub: Hub) -> None:
    agent_id = agent_with_role(hub, "CD33", RSSI, "RSSI-CD33")
    headers = {"Authorization": f"Bearer {hub.admin_token(agent_id)}"}
    before = len(_events(hub))
    response = hub.client.get("/partenaire/rechercher-usager/v2/admin", headers=headers)
    assert response.status_code == 404
    assert _events(hub)[before:] == []
