"""Every partner call is made for a habilitated agent: refusals are 403s in the API's own
format, audited with the reason; allowed calls record the agent and the habilitation."""

from __future__ import annotations

from datetime import timedelta

import anyio
import httpx
import pytest
from sqlmodel import select

from habilitations import agent_states, agents, grants, subscriptions, transitional, transitions
from habilitations.clients import create_client
from habilitations.models import ACTIF, REVOQUE, SUSPENDU_INACTIVITE, Agent, Habilitation
from habilitations.refusals import TransitionRefused
from tests.habilitations.world import (
    INFOS_API,
    OPERATOR,
    RECHERCHE_API,
    RECORDER,
    act,
    add_agent,
    add_rgc,
    agent_row,
    events,
    grant,
    last_seq,
    organisation_id,
    principal,
    read,
    request_id,
    search,
)
from tests.support.hub import Hub
from tests.support.people import CORSE, GIRONDE
from tests.support.scopes import ACTIVITES_V1_SCOPES, ALIMENTATION_SCOPES, RECHERCHE, RECHERCHE_SCOPES, SECRET


def test_an_allowed_call_records_the_agent_habilitation_scopes_and_purpose(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-100")
    habilitation_id = grant(hub, agent_id)
    response = search(hub, "AGT-100", GIRONDE)
    assert response.json()["codeRetour"] == "S001"
    event = events(hub)[-1]
    assert (event.agent_id, event.habilitation_id, event.purpose) == (agent_id, habilitation_id, "Accompagnement RSA")
    assert event.scopes == "api_rechercher-usagerv2 profil_accedant rechercheusager"


def test_an_agent_without_habilitation_is_refused_in_each_apis_format(hub: Hub) -> None:
    add_agent(hub, "AGT-101")
    refused = search(hub, "AGT-101", GIRONDE)
    assert refused.status_code == 403
    assert refused.json()["codeRetour"] == "R001" and refused.json()["jetonUsager"] == "null"
    assert events(hub)[-1].reason == "habilitation_absente"

    other = read(hub, "AGT-101", GIRONDE)
    assert other.status_code == 403
    assert other.json()["codeErreur"] == "ACCES_NON_AUTORISE"
    assert "RGC" in other.json()["message"] and "AGT-101" not in other.json()["message"]


def test_an_unknown_agent_is_refused_and_the_header_is_kept_in_the_audit(hub: Hub) -> None:
    refused = read(hub, "AGT-INCONNU", GIRONDE)
    assert refused.status_code == 403
    event = events(hub)[-1]
    assert (event.reason, event.agent_identifiant, event.decision) == ("agent_inconnu", "AGT-INCONNU", "denied")


def test_a_grant_for_one_api_opens_no_other(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-102")
    grant(hub, agent_id, RECHERCHE_API)
    assert search(hub, "AGT-102", GIRONDE).status_code == 200
    assert read(hub, "AGT-102", GIRONDE).status_code == 403
    grant(hub, agent_id, INFOS_API)
    assert read(hub, "AGT-102", GIRONDE).status_code == 200


def test_a_grant_must_cover_every_scope_the_operation_needs(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-103")
    partial = ["api_rechercher-usagerv2", "rechercheusager"]
    # Such a grant is no longer given (it would open nothing)...
    with pytest.raises(TransitionRefused) as refused:
        grant(hub, agent_id, scopes=partial)
    assert refused.value.code == "habilitation_inutile"
    # ...but one given before that rule is still refused on the call itself.
    habilitation_id = grant(hub, agent_id)
    with hub.services.database.transaction() as session:
        old = session.get(Habilitation, habilitation_id)
        assert old is not None
        old.scopes = partial
        session.add(old)
    assert search(hub, "AGT-103", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "habilitation_insuffisante"


@pytest.mark.parametrize(
    ("transition", "reason"),
    [
        (lambda hub, agent_id: act(hub, agent_states.block_agent, agent_id, motif="usage_suspect"), "agent_bloque"),
        (lambda hub, agent_id: act(hub, agent_states.revoke_agent, agent_id, motif="depart"), "agent_revoque"),
        (lambda hub, agent_id: act(hub, agent_states.delete_agent, agent_id), "agent_supprime"),
    ],
)
def test_a_state_change_applies_on_the_very_next_request(hub: Hub, transition: object, reason: str) -> None:
    agent_id = add_agent(hub, "AGT-104")
    grant(hub, agent_id)
    assert search(hub, "AGT-104", GIRONDE).status_code == 200
    transition(hub, agent_id)  # type: ignore[operator]
    assert search(hub, "AGT-104", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == reason


def test_a_revoked_grant_or_an_expired_one_is_refused(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-105")
    habilitation_id = grant(hub, agent_id, date_fin=hub.clock.today() + timedelta(days=2))
    assert search(hub, "AGT-105", GIRONDE).status_code == 200
    hub.clock.now += timedelta(days=3)
    assert search(hub, "AGT-105", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "habilitation_expiree"
    act(hub, grants.revoke_habilitation, habilitation_id, motif="fin_de_mission")
    assert search(hub, "AGT-105", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "habilitation_absente"


def test_an_rgc_has_no_data_access_through_the_role(hub: Hub) -> None:
    add_rgc(hub, "RGC-1")
    assert search(hub, "RGC-1", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "habilitation_absente"


def test_an_rgc_grants_a_colleague_who_can_then_call(hub: Hub) -> None:
    rgc = principal(hub, add_rgc(hub, "RGC-2"))
    agent_id = add_agent(hub, "AGT-106")
    grant(hub, agent_id, actor=rgc)
    assert search(hub, "AGT-106", GIRONDE).status_code == 200


def test_inactivity_is_checked_at_request_time_and_the_suspension_is_kept(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-107")
    grant(hub, agent_id)
    assert search(hub, "AGT-107", GIRONDE).status_code == 200
    hub.clock.now += timedelta(days=62)
    before = last_seq(hub)
    refused = search(hub, "AGT-107", GIRONDE)
    assert refused.status_code == 403
    assert agent_row(hub, agent_id).etat == SUSPENDU_INACTIVITE
    new = [event for event in events(hub, before) if event.operation != "genererAccessToken"]
    assert [(e.operation, e.channel) for e in new] == [
        ("habilitations.agent.suspendre", "lifecycle"),
        ("RechercherUsagerParNumeroFranceTravail", "partner-api"),
    ]
    assert new[1].reason == "agent_inactivite" and new[0].request_id == new[1].request_id
    # Refused from then on, for the state, until an RGC reactivates the agent.
    assert search(hub, "AGT-107", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "agent_suspendu_inactivite"
    act(hub, agent_states.reactivate_agent, agent_id)
    assert search(hub, "AGT-107", GIRONDE).status_code == 200


def test_each_allowed_call_counts_as_activity(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-108")
    grant(hub, agent_id)
    for _ in range(3):
        hub.clock.now += timedelta(days=45)
        assert search(hub, "AGT-108", GIRONDE).status_code == 200
    assert agent_row(hub, agent_id).etat == ACTIF


def test_a_technical_identity_acts_only_through_its_own_client(hub: Hub) -> None:
    with hub.services.database.transaction() as session:
        identity = agents.create_technical_identity(
            session,
            transitions.SYSTEM_ACTOR,
            client_id="cd33-recherche",
            nom="Nuit",
            identifiant="NUIT",
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
        assert identity.id is not None
        identity_id = identity.id
    grant(hub, identity_id)
    assert search(hub, "NUIT", GIRONDE, client="cd33-recherche").status_code == 200
    assert search(hub, "NUIT", GIRONDE, client="cd33").status_code == 403
    assert events(hub)[-1].reason == "agent_inconnu"


def test_a_person_calls_through_any_client_of_the_organisation_never_another(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-109")
    grant(hub, agent_id)
    assert search(hub, "AGT-109", GIRONDE, client="cd33-recherche").status_code == 200
    assert search(hub, "AGT-109", GIRONDE, client="cd93").status_code == 403
    assert events(hub)[-1].reason == "agent_inconnu"


def test_a_subscription_narrowed_afterwards_refuses_the_grants_beyond_it(hub: Hub) -> None:
    agent_id = add_agent(hub, "AGT-110")
    grant(hub, agent_id)
    with hub.services.database.transaction() as session:
        subscriptions.set_subscription(
            session,
            OPERATOR,
            organisation_id=organisation_id(session, "CD33"),
            api=RECHERCHE_API,
            scopes=["api_rechercher-usagerv2"],
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    assert search(hub, "AGT-110", GIRONDE).status_code == 403
    assert events(hub)[-1].reason == "hors_souscription"


def test_the_producer_feed_is_enforced_too(hub: Hub) -> None:
    token = hub.token("ft-naq", ALIMENTATION_SCOPES)
    headers = {**hub.headers(token), "pa-identifiant-agent": "FT-INCONNU"}
    response = hub.client.put(f"/relais/alimentation/v1/usagers/{GIRONDE.numero}", json={}, headers=headers)
    assert response.status_code == 403
    assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
    assert events(hub)[-1].reason == "agent_inconnu"


def test_transitional_identity_serves_unknown_agents_until_the_first_person_is_habilitated(hub: Hub) -> None:
    # Corse-du-Sud has habilitated nobody yet; its two editors' clients predate enforcement.
    with hub.services.database.transaction() as session:
        for client_id in ("cd2a", "cd2a-bis"):
            create_client(
                session, client_id=client_id, organisation_code="CD2A", scopes=RECHERCHE_SCOPES.split(), secret=SECRET
            )
        subscriptions.set_subscription(
            session,
            OPERATOR,
            organisation_id=organisation_id(session, "CD2A"),
            api=RECHERCHE_API,
            scopes=RECHERCHE_SCOPES.split(),
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    act(hub, transitional.create_transitional_identity, client_id="cd2a")
    allowed = search(hub, "LOGICIEL-SANS-AGENTS", CORSE, client="cd2a")
    assert allowed.status_code == 200, allowed.text
    event = events(hub)[-1]
    assert event.purpose == "transition" and event.agent_identifiant == "LOGICIEL-SANS-AGENTS"
    # Other clients of the organisation have none: deny by default.
    assert search(hub, "LOGICIEL-SANS-AGENTS", CORSE, client="cd2a-bis").status_code == 403

    before = last_seq(hub)
    grant(hub, add_agent(hub, "AGT-111", "CD2A"))
    revoked = [e for e in events(hub, before) if e.operation == "habilitations.agent.revoquer"]
    assert len(revoked) == 1 and revoked[0].details is not None
    assert revoked[0].details["motif"] == "premiere_habilitation_nominative"
    assert search(hub, "LOGICIEL-SANS-AGENTS", CORSE, client="cd2a").status_code == 403
    assert events(hub)[-1].reason == "agent_inconnu"
    assert search(hub, "AGT-111", CORSE, client="cd2a").status_code == 200
    with hub.services.database.session() as session:
        identity = session.exec(select(Agent).where(Agent.identifiant == "*")).one()
        assert identity.etat == REVOQUE


def test_no_transitional_identity_once_the_organisation_habilitates_people(hub: Hub) -> None:
    with pytest.raises(TransitionRefused) as refused:
        act(hub, transitional.create_transitional_identity, client_id="cd33-recherche")
    assert refused.value.code == "organisation_deja_habilitee"


def test_a_missing_agent_header_is_still_a_400_naming_it(hub: Hub) -> None:
    headers = hub.headers(hub.token())
    del headers["pa-identifiant-agent"]
    response = hub.client.post(
        "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=headers,
    )
    assert response.status_code == 400
    assert events(hub)[-1].reason == "agent_header_missing:pa-identifiant-agent"


def test_activites_refuses_in_its_documented_403_shape(hub: Hub) -> None:
    url = "/partenaire/activites-operationnelles/v1/activites/chercher"
    headers = {**hub.headers(hub.token("cd33", ACTIVITES_V1_SCOPES)), "pa-identifiant-agent": "AGT-INCONNU"}
    response = hub.client.get(url, headers=headers)
    assert response.status_code == 403
    assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
    assert events(hub)[-1].reason == "agent_inconnu"
    headers["pa-identifiant-agent"] = "AGT-0042"
    assert hub.client.get(url, headers=headers).status_code in (200, 204)  # nothing to do yet


@pytest.mark.parametrize("blank", [b" ", b"\t", b"\x1f", b"\xa0", b"\x85"])
def test_an_identifiant_made_of_blanks_is_refused_before_any_data(hub: Hub, blank: bytes) -> None:
    # Blanks pass a bare "non-empty, no |" rule; they must not let a call through without an
    # agent. httpx's ASGI transport sends the header's bytes as they are (the test client
    # re-encodes them as UTF-8), as a real server would receive them.
    sent = {**hub.headers(hub.token("cd33", RECHERCHE_SCOPES)), "pa-identifiant-agent": ""}
    headers = [
        (name.encode(), blank if name == "pa-identifiant-agent" else value.encode()) for name, value in sent.items()
    ]

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=hub.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post(
                f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": GIRONDE.numero}, headers=headers
            )

    response = anyio.run(call)
    assert response.status_code == 400
    assert response.json()["codeRetour"] == "R997" and response.json()["jetonUsager"] == "null"
    assert events(hub)[-1].decision == "denied"
