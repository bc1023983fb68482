"""The habilitations admin API through the real app: who may do what, on which organisation.

People and roles are set up with the domain's state changes as the hub operator would (the
command line), then every action under test goes through HTTP with an admin token, as an RGC,
a deputy, an RSSI, the CSSI or the operator would send it after their ProConnect login.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from audit.models import AuditEvent
from habilitations import agents, designations, overrides
from habilitations.models import (
    CSSI,
    OPERATEUR,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    RSSI,
    Agent,
    Designation,
    Habilitation,
)
from habilitations.roles import Principal
from relais.core.outbox import OutboxMessage
from relais.core.tables import Organisation
from tests.habilitations.world import RECORDER, request_id
from tests.support.hub import Hub
from tests.support.scopes import AGENT, RECHERCHE, SANCTIONS_SCOPES

BASE = "/relais/habilitations/v1"
RECHERCHE_API = "rechercher-usager-v2"
RECHERCHE_GRANT = ["api_rechercher-usagerv2", "rechercheusager", "profil_accedant"]
SANCTIONS = SANCTIONS_SCOPES.split()


@dataclass
class Staff:
    """The people of the tests: ids of agents holding each role."""

    hub: Hub
    rgc33: int
    deputy33: int
    rssi33: int
    agent33: int
    rgc93: int
    cssi: int
    operator: int

    def headers(self, agent_id: int, **token: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.hub.admin_token(agent_id, **token)}"}

    def get(self, agent_id: int, path: str, **params: Any) -> httpx.Response:
        return self.hub.client.get(f"{BASE}{path}", headers=self.headers(agent_id), params=params)

    def post(self, agent_id: int, path: str, body: dict[str, Any] | None = None, **token: Any) -> httpx.Response:
        return self.hub.client.post(f"{BASE}{path}", headers=self.headers(agent_id, **token), json=body)

    def put(self, agent_id: int, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.hub.client.put(f"{BASE}{path}", headers=self.headers(agent_id), json=body)


def organisation_id(session: Session, code: str) -> int:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).one()
    assert organisation.id is not None
    return organisation.id


def agent_id(session: Session, code: str, identifiant: str) -> int:
    agent = session.exec(
        select(Agent).where(Agent.organisation_id == organisation_id(session, code), Agent.identifiant == identifiant)
    ).one()
    assert agent.id is not None
    return agent.id


def make_staff(hub: Hub) -> Staff:
    operator = Principal.command_line()
    now = hub.clock.now
    commitment = now.date() - timedelta(days=30)
    ids: dict[str, int] = {}
    with hub.services.database.session() as session:

        def person(key: str, code: str, identifiant: str, role: str | None, statut: str = "fonctionnaire") -> None:
            org = organisation_id(session, code)
            agent = agents.create_agent(
                session,
                operator,
                organisation_id=org,
                identifiant=identifiant,
                nom=f"Nom {identifiant}",
                prenom="Prénom",
                statut_emploi=statut,
                now=now,
                recorder=RECORDER,
                request_id=request_id(),
            )
            assert agent.id is not None
            ids[key] = agent.id
            if role is not None:
                designations.designate(
                    session,
                    operator,
                    organisation_id=org,
                    agent_id=agent.id,
                    role=role,
                    acte_engagement_le=commitment if role in (RGC_TITULAIRE, RGC_SUPPLEANT) else None,
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                )

        person("rgc33", "CD33", "RGC-33", RGC_TITULAIRE)
        person("deputy33", "CD33", "RGC-33-S", RGC_SUPPLEANT)
        person("rssi33", "CD33", "RSSI-33", RSSI)
        person("agent33", "CD33", "AGT-100", None, "contractuel")
        person("rgc93", "CD93", "RGC-93", RGC_TITULAIRE)
        person("cssi", "FT-NAQ", "CSSI-FT", CSSI)
        person("operator", "FT-NAQ", "OPS-1", OPERATEUR)
        session.commit()
    return Staff(hub=hub, **ids)


@pytest.fixture
def staff(hub: Hub) -> Staff:
    return make_staff(hub)


def grant_body(**extra: Any) -> dict[str, Any]:
    return {
        "api": RECHERCHE_API,
        "scopes": RECHERCHE_GRANT,
        "finalite": "Instruction RSA",
        "justification": "Instruit les demandes de RSA",
        **extra,
    }


def events(hub: Hub, **where: Any) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        query = select(AuditEvent)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return list(session.exec(query.order_by(col(AuditEvent.id))).all())


def error(response: httpx.Response) -> str:
    body = response.json()
    assert body["codeHttp"] == response.status_code, body
    return str(body["codeErreur"])


# Authentication ---------------------------------------------------------------------------------


def test_no_token_or_a_partner_token_is_refused(staff: Staff) -> None:
    hub = staff.hub
    assert hub.client.get(f"{BASE}/organisations/CD33/agents").status_code == 401
    partner = hub.token("cd33")
    response = hub.client.get(f"{BASE}/organisations/CD33/agents", headers={"Authorization": f"Bearer {partner}"})
    assert response.status_code == 401


# Agents and habilitations by the RGC -------------------------------------------------------------


def test_rgc_creates_an_agent_and_habilitates_them_within_the_subscription(staff: Staff) -> None:
    created = staff.post(
        staff.rgc33, "/organisations/CD33/agents", {"identifiant": "AGT-200", "nom": "Durand", "prenom": "Léa"}
    )
    assert created.status_code == 201, created.text
    new_agent = created.json()
    assert new_agent["etat"] == "actif" and new_agent["organisation"] == "CD33"

    granted = staff.post(staff.rgc33, f"/agents/{new_agent['id']}/habilitations", grant_body())
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert grant["scopes"] == RECHERCHE_GRANT and grant["accordeePar"] == f"agent:{staff.rgc33}"

    detail = staff.get(staff.rssi33, f"/agents/{new_agent['id']}")
    assert detail.status_code == 200
    assert [h["id"] for h in detail.json()["habilitations"]] == [grant["id"]]

    # The transition has its own event, and the request its own, naming what it acted upon.
    transitions = events(staff.hub, operation="habilitations.habilitation.accorder", habilitation_id=grant["id"])
    assert len(transitions) == 1 and transitions[0].channel == "admin-api"
    (request_event,) = events(staff.hub, operation="accorderHabilitation")
    assert request_event.decision == "allowed"
    assert request_event.agent_id == staff.rgc33
    assert request_event.target == f"habilitation:{grant['id']}"


def test_grant_outside_the_subscription_is_refused(staff: Staff) -> None:
    response = staff.post(
        staff.rgc33, f"/agents/{staff.agent33}/habilitations", grant_body(scopes=["api_alimentationv1"])
    )
    assert response.status_code == 403
    assert error(response) == "HORS_SOUSCRIPTION"
    with staff.hub.services.database.session() as session:
        assert session.exec(select(Habilitation).where(Habilitation.agent_id == staff.agent33)).first() is None


def test_an_rgc_never_grants_themselves_but_a_deputy_may(staff: Staff) -> None:
    own = staff.post(staff.rgc33, f"/agents/{staff.rgc33}/habilitations", grant_body())
    assert own.status_code == 403
    assert error(own) == "SEPARATION_DES_ROLES"
    by_deputy = staff.post(staff.deputy33, f"/agents/{staff.rgc33}/habilitations", grant_body())
    assert by_deputy.status_code == 201, by_deputy.text

    # Extending one's own grant is refused too; shortening it is not.
    grant_id = by_deputy.json()["id"]
    later = (staff.hub.clock.today() + timedelta(days=400)).isoformat()
    assert staff.put(staff.deputy33, f"/habilitations/{grant_id}/date-fin", {"dateFin": later}).status_code == 200
    extended = staff.put(staff.rgc33, f"/habilitations/{grant_id}/date-fin", {"dateFin": None})
    assert extended.status_code == 403 and error(extended) == "SEPARATION_DES_ROLES"
    sooner = (staff.hub.clock.today() + timedelta(days=10)).isoformat()
    assert staff.put(staff.rgc33, f"/habilitations/{grant_id}/date-fin", {"dateFin": sooner}).status_code == 200


def test_an_rgc_of_another_organisation_can_neither_read_nor_act(staff: Staff) -> None:
    assert staff.get(staff.rgc93, "/organisations/CD33/agents").status_code == 403
    created = staff.post(staff.rgc93, "/organisations/CD33/agents", {"identifiant": "X-1", "nom": "Intrus"})
    assert created.status_code == 403 and error(created) == "ROLE_INSUFFISANT"
    granted = staff.post(staff.rgc93, f"/agents/{staff.agent33}/habilitations", grant_body())
    assert granted.status_code == 403
    assert staff.get(staff.rgc93, f"/agents/{staff.agent33}").status_code == 403
    # ...while their own organisation is theirs to manage.
    assert staff.get(staff.rgc93, "/organisations/CD93/agents").status_code == 200

    (refused,) = events(staff.hub, operation="creerAgent")
    assert refused.decision == "denied" and refused.reason == "role:gerer"
    with staff.hub.services.database.session() as session:
        assert session.exec(select(Agent).where(Agent.identifiant == "X-1")).first() is None


def test_a_security_officer_reads_but_never_grants(staff: Staff) -> None:
    listed = staff.get(staff.rssi33, "/organisations/CD33/agents")
    assert listed.status_code == 200
    assert "AGT-100" in [agent["identifiant"] for agent in listed.json()["resultats"]]
    response = staff.post(staff.rssi33, f"/agents/{staff.agent33}/habilitations", grant_body())
    assert response.status_code == 403 and error(response) == "ROLE_INSUFFISANT"
    # An agent with no role at all sees nothing either.
    assert staff.get(staff.agent33, "/organisations/CD33/agents").status_code == 403


def test_agents_are_listed_by_state_and_paginated(staff: Staff) -> None:
    first = staff.get(staff.rgc33, "/organisations/CD33/agents", taille=2, page=1).json()
    second = staff.get(staff.rgc33, "/organisations/CD33/agents", taille=2, page=2).json()
    assert first["total"] == second["total"] >= 4
    assert len(first["resultats"]) == 2
    assert not {a["id"] for a in first["resultats"]} & {a["id"] for a in second["resultats"]}
    assert staff.get(staff.rgc33, "/organisations/CD33/agents", taille=500).status_code == 400

    revoked = staff.post(staff.rgc33, f"/agents/{staff.agent33}/etat", {"action": "revoquer", "motif": "depart"})
    assert revoked.status_code == 200 and revoked.json()["etat"] == "revoque"
    only = staff.get(staff.rgc33, "/organisations/CD33/agents", etat="revoque").json()
    assert [a["id"] for a in only["resultats"]] == [staff.agent33]
    technical = staff.get(staff.rgc33, "/organisations/CD33/agents", type="technique").json()
    assert technical["resultats"] and all(a["type"] == "technique" for a in technical["resultats"])


def test_habilitations_are_reduced_and_revoked(staff: Staff) -> None:
    grant = staff.post(staff.rgc33, f"/agents/{staff.agent33}/habilitations", grant_body()).json()
    # Every operation of this API needs all three scopes: keeping one would cut the agent off.
    useless = staff.post(staff.rgc33, f"/habilitations/{grant['id']}/reduction", {"scopes": ["rechercheusager"]})
    assert useless.status_code == 400 and error(useless) == "HABILITATION_INUTILE"
    assert "profil_accedant" in useless.json()["message"]
    sanctions = staff.post(
        staff.rgc33,
        f"/agents/{staff.agent33}/habilitations",
        grant_body(api="gestion-sanctions-rsa-v1", scopes=SANCTIONS),
    ).json()
    kept = ["api_gestion-sanctions-rsav1", "gestiondesmanquements"]
    reduced = staff.post(staff.rgc33, f"/habilitations/{sanctions['id']}/reduction", {"scopes": kept})
    assert reduced.status_code == 200 and reduced.json()["scopes"] == kept
    widened = staff.post(staff.rgc33, f"/habilitations/{grant['id']}/reduction", {"scopes": RECHERCHE_GRANT})
    assert widened.status_code == 400
    revoked = staff.post(staff.rgc33, f"/habilitations/{grant['id']}/etat", {"action": "revoquer", "motif": "depart"})
    assert revoked.status_code == 200 and revoked.json()["etat"] == "revoque"
    listed = staff.get(
        staff.rssi33, "/organisations/CD33/habilitations", agentId=staff.agent33, api=RECHERCHE_API
    ).json()
    assert [(h["id"], h["etat"]) for h in listed["resultats"]] == [(grant["id"], "revoque")]
    again = staff.post(staff.rgc33, f"/habilitations/{grant['id']}/etat", {"action": "revoquer", "motif": "depart"})
    assert again.status_code == 409


# Security override --------------------------------------------------------------------------------


def _search(hub: Hub) -> httpx.Response:
    return hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": "10000000001"},
        headers=hub.headers(hub.token("cd33")),
    )


def test_security_override_blocks_the_agent_on_the_next_partner_call(staff: Staff) -> None:
    hub = staff.hub
    with hub.services.database.session() as session:
        working = agent_id(session, "CD33", AGENT["pa-identifiant-agent"])
    assert _search(hub).json()["codeRetour"] == "S001"

    by_rgc = staff.post(staff.rgc33, f"/agents/{working}/etat", {"action": "bloquer", "motif": "usage_suspect"})
    assert by_rgc.status_code == 403 and error(by_rgc) == "ROLE_INSUFFISANT"
    no_reason = staff.post(staff.cssi, f"/agents/{working}/etat", {"action": "bloquer"})
    assert no_reason.status_code == 400

    blocked = staff.post(staff.cssi, f"/agents/{working}/etat", {"action": "bloquer", "motif": "usage_suspect"})
    assert blocked.status_code == 200 and blocked.json()["etat"] == "bloque"
    assert _search(hub).status_code == 403

    with hub.services.database.session() as session:
        notices = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == "rgc:CD33")).all()
    assert [notice.topic for notice in notices] == [overrides.TOPIC_OVERRIDE]

    # Only the CSSI (or the operator) lifts it; the RGC cannot.
    by_rgc = staff.post(staff.rgc33, f"/agents/{working}/etat", {"action": "reactiver", "motif": "levee_doute"})
    assert by_rgc.status_code == 403
    lifted = staff.post(staff.operator, f"/agents/{working}/etat", {"action": "reactiver", "motif": "levee_doute"})
    assert lifted.status_code == 200 and lifted.json()["etat"] == "actif"
    assert _search(hub).json()["codeRetour"] == "S001"


# Designations, technical identities, subscriptions ------------------------------------------------


def test_titular_rgc_designates_a_deputy_and_their_departure_is_notified(staff: Staff) -> None:
    commitment = (staff.hub.clock.today() - timedelta(days=1)).isoformat()
    body = {"agentId": staff.agent33, "role": "rgc_suppleant", "acteEngagementLe": commitment}
    assert staff.post(staff.deputy33, "/organisations/CD33/designations", body).status_code == 403
    designated = staff.post(staff.rgc33, "/organisations/CD33/designations", body)
    assert designated.status_code == 201, designated.text
    designation = designated.json()

    current = staff.get(staff.rssi33, "/organisations/CD33/designations").json()
    assert designation["id"] in [d["id"] for d in current]

    ended = staff.post(staff.rgc33, f"/designations/{designation['id']}/fin", {"motif": "depart"})
    assert ended.status_code == 200 and ended.json()["fin"] is not None
    with staff.hub.services.database.session() as session:
        notice = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == "cssi")).one()
    deadline = staff.hub.clock.today() + timedelta(days=8)
    assert notice.payload["a_signaler_avant"] == deadline.isoformat()


def test_a_contractor_is_never_designated_rgc(staff: Staff) -> None:
    created = staff.post(
        staff.rgc33,
        "/organisations/CD33/agents",
        {"identifiant": "PRESTA-1", "nom": "Presta", "statutEmploi": "prestataire"},
    ).json()
    response = staff.post(
        staff.rgc33,
        "/organisations/CD33/designations",
        {"agentId": created["id"], "role": "rgc_suppleant", "acteEngagementLe": "2026-01-05"},
    )
    assert response.status_code == 400 and error(response) == "STATUT_NON_ELIGIBLE"
    with staff.hub.services.database.session() as session:
        assert session.exec(select(Designation).where(Designation.agent_id == created["id"])).first() is None


def test_technical_identities_belong_to_the_organisation_clients(staff: Staff) -> None:
    created = staff.post(
        staff.rgc33,
        "/organisations/CD33/identites-techniques",
        {"clientId": "cd33-recherche", "nom": "Import nocturne"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["type"] == "technique" and created.json()["clientId"] == "cd33-recherche"
    other = staff.post(staff.rgc33, "/organisations/CD33/identites-techniques", {"clientId": "cd93", "nom": "Vol"})
    assert other.status_code == 404 and error(other) == "CLIENT_INCONNU"


def test_subscriptions_are_set_by_the_operator_only(staff: Staff) -> None:
    body = {"scopes": ["api_rechercher-usagerv2", "rechercheusager"], "reference": "FORM-2026-33"}
    refused = staff.put(staff.rgc33, f"/organisations/CD33/souscriptions/{RECHERCHE_API}", body)
    assert refused.status_code == 403
    done = staff.put(staff.operator, f"/organisations/CD33/souscriptions/{RECHERCHE_API}", body)
    assert done.status_code == 200 and done.json()["scopes"] == body["scopes"]
    listed = staff.get(staff.rgc33, "/organisations/CD33/souscriptions").json()
    assert {"api": RECHERCHE_API, "scopes": body["scopes"], "reference": "FORM-2026-33", "demandeeLe": None} in listed
    unknown = staff.put(staff.operator, "/organisations/CD33/souscriptions/no-such-api-v1", body)
    assert unknown.status_code == 400 and error(unknown) == "API_INCONNUE"
    # The narrowed subscription now bounds grants.
    response = staff.post(staff.rgc33, f"/agents/{staff.agent33}/habilitations", grant_body())
    assert response.status_code == 403 and error(response) == "HORS_SOUSCRIPTION"


def test_unknown_things_answer_404(staff: Staff) -> None:
    assert error(staff.get(staff.rgc33, "/organisations/CD99/agents")) == "ORGANISATION_INCONNUE"
    assert error(staff.get(staff.rgc33, "/agents/999999")) == "AGENT_INCONNU"
    assert error(staff.get(staff.rgc33, f"/habilitations/{'0' * 32}")) == "HABILITATION_INCONNUE"


def test_no_personal_data_in_the_audit_of_admin_calls(staff: Staff) -> None:
    staff.post(
        staff.rgc33,
        "/organisations/CD33/agents",
        {"identifiant": "AGT-300", "nom": "Dupontel", "prenom": "Albertine", "email": "albertine@cd33.fr"},
    )
    for event in events(staff.hub):
        text = repr(event.model_dump())
        assert "Dupontel" not in text and "Albertine" not in text and "albertine@" not in text


def test_end_dates_in_the_past_are_refused(staff: Staff) -> None:
    past = (staff.hub.clock.today() - timedelta(days=1)).isoformat()
    response = staff.post(staff.rgc33, f"/agents/{staff.agent33}/habilitations", grant_body(dateFin=past))
    assert response.status_code == 400 and error(response) == "DATE_FIN_PASSEE"


def test_rgc_corrects_an_agent_identity_and_the_audit_names_fields_only(staff: Staff) -> None:
    response = staff.hub.client.patch(
        f"{BASE}/agents/{staff.agent33}",
        headers=staff.headers(staff.rgc33),
        json={"nom": "Nouveau-Nom", "email": "nouveau@cd33.fr"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["nom"] == "Nouveau-Nom"
    (changed,) = events(staff.hub, operation="habilitations.agent.modifier")
    assert changed.details is not None and changed.details["champs"] == ["email", "nom"]
    assert "Nouveau-Nom" not in repr(changed.model_dump())
    other = staff.hub.client.patch(
        f"{BASE}/agents/{staff.agent33}", headers=staff.headers(staff.rgc93), json={"nom": "Intrus"}
    )
    assert other.status_code == 403
