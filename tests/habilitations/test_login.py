"""Agent login through ProConnect, against a fake provider that signs its own tokens.

The whole of Relais is real (app, pipeline, database, audit); only ProConnect is faked, at
the HTTP level (pytest-httpx), and the test plays the agent's browser between the two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pytest_httpx import HTTPXMock
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlmodel import col, select

from audit.models import AuditEvent
from habilitations.login_models import LoginAttempt, OrganisationSiret
from habilitations.models import RGC_TITULAIRE, SUSPENDU_INACTIVITE, TECHNIQUE, Agent, Designation
from relais.core.tables import Organisation
from tests.fakes.proconnect import FakeProConnect, FakeUser
from tests.support.hub import Hub, hub, hub_app

# The end-to-end hub's fixtures, which the tests below request by name.
E2E_FIXTURES = (hub, hub_app)

BASE = "/relais/connexion/v1"
REDIRECT_URI = f"https://relais.test{BASE}/retour"
EMAIL = "agent.connexion@gironde.fr"
SIRET = "22330001300016"


@dataclass
class Login:
    hub: Hub
    fake: FakeProConnect
    agent_id: int

    def start(self) -> str:
        """The authorization URL Relais sends the browser to."""
        response = self.hub.client.get(f"{BASE}/connexion", follow_redirects=False)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def callback_url(self) -> str:
        """Start a login and let the fake provider approve it: the URL it sends back to."""
        return self.fake.authorize(self.start())

    def finish(self, callback_url: str) -> httpx.Response:
        parts = urlsplit(callback_url)
        return self.hub.client.get(f"{parts.path}?{parts.query}")

    def login(self) -> httpx.Response:
        return self.finish(self.callback_url())

    def agent(self) -> Agent:
        with self.hub.services.database.session() as session:
            agent = session.get(Agent, self.agent_id)
            assert agent is not None
            return agent

    def set_agent(self, **values: Any) -> None:
        with self.hub.services.database.session() as session:
            agent = session.get(Agent, self.agent_id)
            assert agent is not None
            for name, value in values.items():
                setattr(agent, name, value)
            session.add(agent)
            session.commit()

    def last_event(self) -> AuditEvent:
        with self.hub.services.database.session() as session:
            event = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
            assert event is not None
            return event


def add_agent(hub: Hub, *, identifiant: str, email: str, organisation: str = "CD33", **values: Any) -> int:
    with hub.services.database.session() as session:
        org = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        agent = Agent(
            organisation_id=org.id,  # type: ignore[arg-type]
            identifiant=identifiant,
            nom="Martin",
            prenom="Claire",
            email=email,
            statut_emploi="fonctionnaire",
            created_at=hub.clock.now - timedelta(days=30),
            **values,
        )
        session.add(agent)
        session.commit()
        assert agent.id is not None
        return agent.id


@pytest.fixture
def proconnect(hub: Hub, httpx_mock: HTTPXMock) -> Iterator[FakeProConnect]:
    """The fake provider, and the hub configured to use it (restored afterwards)."""
    fake = FakeProConnect(redirect_uris=(REDIRECT_URI,), clock=hub.clock, user=FakeUser(email=EMAIL, siret=SIRET))
    fake.install(httpx_mock)
    original = hub.services.settings
    hub.services.settings = original.model_copy(
        update={
            "proconnect_issuer": fake.issuer,
            "proconnect_client_id": fake.client_id,
            "proconnect_client_secret": fake.client_secret,
            "proconnect_redirect_uri": REDIRECT_URI,
            "proconnect_post_logout_redirect_uri": "https://console.relais.test/au-revoir",
        }
    )
    try:
        yield fake
    finally:
        hub.services.settings = original


@pytest.fixture
def flow(hub: Hub, proconnect: FakeProConnect) -> Login:
    """CD33 owns the fake user's SIRET; the agent exists with that e-mail, never logged in."""
    with hub.services.database.session() as session:
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        session.add(OrganisationSiret(siret=SIRET, organisation_id=cd33.id))  # type: ignore[arg-type]
        session.commit()
    # The e-mail as the RGC typed it: matching ignores case.
    agent_id = add_agent(hub, identifiant="AGT-LOGIN-1", email="Agent.Connexion@Gironde.fr")
    return Login(hub, proconnect, agent_id)


# The happy path -------------------------------------------------------------------------


def test_login_with_mfa_gives_an_admin_token_that_opens_the_admin_api(flow: Login, hub: Hub) -> None:
    authorize = flow.start()
    params = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{flow.fake.issuer}/authorize?")
    assert len(params["state"][0]) >= 32 and len(params["nonce"][0]) >= 32
    assert params["code_challenge_method"] == ["S256"] and len(params["code_challenge"][0]) == 43
    asked = json.loads(params["claims"][0])["id_token"]
    assert asked["acr"] == {"essential": True, "values": ["eidas1-mfa", "eidas2", "eidas3"]}
    assert asked["amr"] == {"essential": True}
    assert "code_verifier" not in params

    response = flow.finish(flow.fake.authorize(authorize))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["idAgent"] == flow.agent_id and body["organisation"] == "CD33"
    assert body["acr"] == "eidas2" and body["typeJeton"] == "Bearer" and body["premiereConnexion"] is True
    assert datetime.fromisoformat(body["dateAuthentification"]) == hub.clock.now.replace(microsecond=0)

    moi = hub.client.get(f"{BASE}/moi", headers={"Authorization": f"Bearer {body['jetonAcces']}"})
    assert moi.status_code == 200, moi.text
    assert moi.json()["idAgent"] == flow.agent_id
    assert moi.json()["organisation"] == "CD33" and moi.json()["acr"] == "eidas2"
    assert moi.json()["roles"] == []

    agent = flow.agent()
    assert agent.sub == flow.fake.user.sub and agent.siret == SIRET
    assert agent.derniere_connexion == hub.clock.now and agent.derniere_activite == hub.clock.now
    assert agent.derniere_connexion_acr == "eidas2"


def test_login_is_audited_with_the_agent_and_acr_and_no_personal_data(flow: Login, hub: Hub) -> None:
    assert flow.login().status_code == 200
    with hub.services.database.session() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.operation == "terminerConnexion")).one()
    assert (event.decision, event.http_status, event.channel) == ("allowed", 200, "admin-api")
    assert event.agent_id == flow.agent_id and event.acr == "eidas2" and event.organisation == "CD33"
    assert event.target == f"agent:{flow.agent_id}" and event.details == {
        "premiere_connexion": True,
        "amr": ["pwd", "totp"],
    }
    stored = json.dumps(event.model_dump(mode="json"))
    for value in (EMAIL, "Martin", "Claire", flow.fake.user.sub, SIRET):
        assert value.lower() not in stored.lower()


def test_a_known_agent_is_found_by_sub_even_after_an_email_change(flow: Login, hub: Hub) -> None:
    assert flow.login().status_code == 200
    flow.fake.user = FakeUser(email="nouvelle.adresse@gironde.fr", siret="11111111111111")
    hub.clock.now += timedelta(days=3)

    response = flow.login()

    assert response.status_code == 200, response.text
    assert response.json()["idAgent"] == flow.agent_id and response.json()["premiereConnexion"] is False
    assert flow.agent().derniere_activite == hub.clock.now


def test_a_known_agent_signing_in_for_another_organisation_s_establishment_is_refused(flow: Login, hub: Hub) -> None:
    assert flow.login().status_code == 200
    # Same ProConnect person, now signing in for an establishment of CD93.
    with hub.services.database.session() as session:
        cd93 = session.exec(select(Organisation).where(Organisation.code == "CD93")).one()
        session.add(OrganisationSiret(siret="22222222222222", organisation_id=cd93.id))  # type: ignore[arg-type]
        session.commit()
    flow.fake.user = FakeUser(email=EMAIL, siret="22222222222222", sub=flow.fake.user.sub)

    response = flow.login()

    assert response.status_code == 403, response.text
    assert flow.agent().siret == SIRET
    with hub.services.database.session() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.reason == "siret_other_organisation")).one()
    assert event.decision == "denied"


def test_roles_are_shown_to_the_agent(flow: Login, hub: Hub) -> None:
    with hub.services.database.session() as session:
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        session.add(
            Designation(
                organisation_id=cd33.id,  # type: ignore[arg-type]
                agent_id=flow.agent_id,
                role=RGC_TITULAIRE,
                debut=hub.clock.now - timedelta(days=1),
            )
        )
        session.commit()
    token = flow.login().json()["jetonAcces"]
    moi = hub.client.get(f"{BASE}/moi", headers={"Authorization": f"Bearer {token}"})
    assert moi.json()["roles"] == [{"role": "rgc_titulaire", "organisation": "CD33"}]


def test_the_admin_token_stops_working_once_the_agent_is_suspended(flow: Login, hub: Hub) -> None:
    token = flow.login().json()["jetonAcces"]
    flow.set_agent(etat=SUSPENDU_INACTIVITE)
    moi = hub.client.get(f"{BASE}/moi", headers={"Authorization": f"Bearer {token}"})
    assert moi.status_code == 401


def test_logout_gives_the_provider_end_session_url(flow: Login, hub: Hub) -> None:
    body = flow.login().json()
    response = hub.client.post(
        f"{BASE}/deconnexion",
        json={"jetonIdentite": body["jetonIdentite"]},
        headers={"Authorization": f"Bearer {body['jetonAcces']}"},
    )
    assert response.status_code == 200, response.text
    url = response.json()["urlDeconnexion"]
    assert url.startswith(f"{flow.fake.issuer}/session/end?")
    query = parse_qs(urlsplit(url).query)
    assert query["id_token_hint"] == [body["jetonIdentite"]]
    assert query["post_logout_redirect_uri"] == ["https://console.relais.test/au-revoir"]
    assert len(query["state"][0]) >= 32
    # The browser follows it: the provider ends the session.
    assert flow.fake.handle(httpx.Request("GET", url)).status_code == 302
    assert flow.fake.ended_sessions[-1]["id_token_hint"] == body["jetonIdentite"]


def test_logout_needs_an_admin_token(flow: Login, hub: Hub) -> None:
    body = flow.login().json()
    response = hub.client.post(f"{BASE}/deconnexion", json={"jetonIdentite": body["jetonIdentite"]})
    assert response.status_code == 401


# The state ------------------------------------------------------------------------------


def test_a_forged_state_is_refused_before_anything_is_asked_of_the_provider(flow: Login, hub: Hub) -> None:
    callback = flow.callback_url()
    forged = re.sub(r"state=[^&]+", "state=" + "A" * 43, callback)

    response = flow.finish(forged)

    assert response.status_code == 400
    assert response.json()["codeErreur"] == "CONNEXION_INVALIDE"
    assert flow.fake.token_requests == 0
    assert flow.last_event().reason == "login_state_unknown"
    assert flow.agent().sub is None


def test_a_replayed_state_is_refused(flow: Login, hub: Hub) -> None:
    callback = flow.callback_url()
    assert flow.finish(callback).status_code == 200

    replay = flow.finish(callback)

    assert replay.status_code == 400 and replay.json()["codeErreur"] == "CONNEXION_INVALIDE"
    assert flow.last_event().reason == "login_state_replayed"
    assert flow.fake.token_requests == 1


def test_a_state_is_spent_even_when_its_login_was_refused(flow: Login, hub: Hub) -> None:
    flow.fake.acr = "eidas1"
    callback = flow.callback_url()
    assert flow.finish(callback).status_code == 403
    flow.fake.acr = "eidas2"

    assert flow.finish(callback).status_code == 400
    assert flow.last_event().reason == "login_state_replayed"


def test_a_login_not_finished_within_ten_minutes_must_start_again(flow: Login, hub: Hub) -> None:
    authorize = flow.start()
    hub.clock.now += timedelta(minutes=10, seconds=1)
    response = flow.finish(flow.fake.authorize(authorize))
    assert response.status_code == 400
    assert flow.last_event().reason == "login_state_expired"


def test_a_provider_error_ends_the_login(flow: Login, hub: Hub) -> None:
    state = parse_qs(urlsplit(flow.start()).query)["state"][0]
    response = hub.client.get(
        f"{BASE}/retour", params={"state": state, "error": "access_denied", "error_description": "refus"}
    )
    assert response.status_code == 401 and response.json()["codeErreur"] == "AUTHENTIFICATION_NON_VERIFIEE"
    assert flow.last_event().reason == "provider_error:access_denied"


def test_an_answer_from_another_issuer_is_refused(flow: Login, hub: Hub) -> None:
    callback = flow.callback_url().replace("iss=https", "iss=https%3A%2F%2Fevil.test%2Fx")
    response = flow.finish(callback)
    assert response.status_code == 401
    assert flow.last_event().reason == "issuer_mismatch"
    assert flow.fake.token_requests == 0


# The ID token and userinfo --------------------------------------------------------------


@pytest.mark.parametrize(
    ("knob", "value", "reason"),
    [
        ("id_token_signer", "intruder", "id_token_invalid:bad_signature"),
        ("id_token_signer", "none", "id_token_invalid:"),
        ("id_token_changes", {"nonce": "n" * 43}, "id_token_nonce_mismatch"),
        ("id_token_changes", {"nonce": None}, "id_token_nonce_mismatch"),
        ("id_token_changes", {"iss": "https://evil.test/api/v2"}, "id_token_claim:iss"),
        ("id_token_changes", {"aud": "another-client"}, "id_token_claim:aud"),
        ("id_token_changes", {"aud": ["another-client", "relais-test"]}, "id_token_claim:azp"),
        ("id_token_changes", {"exp": 1_000_000_000}, "id_token_expired"),
        ("userinfo_signer", "intruder", "userinfo_invalid:bad_signature"),
        ("userinfo_signer", "none", "userinfo_invalid:"),
        ("userinfo_format", "json", "userinfo_unsigned"),
        ("userinfo_changes", {"sub": "someone-else"}, "userinfo_claim:sub"),
        ("userinfo_changes", {"aud": "another-client"}, "userinfo_claim:aud"),
    ],
)
def test_tokens_that_do_not_verify_are_refused(flow: Login, hub: Hub, knob: str, value: Any, reason: str) -> None:
    setattr(flow.fake, knob, value)

    response = flow.login()

    assert response.status_code == 401, response.text
    assert response.json() == {
        "codeHttp": 401,
        "codeErreur": "AUTHENTIFICATION_NON_VERIFIEE",
        "message": "L'authentification ProConnect n'a pas pu être vérifiée : recommencez la connexion",
    }
    event = flow.last_event()
    assert event.reason is not None and event.reason.startswith(reason), event.reason
    assert (event.decision, event.agent_id) == ("denied", None)
    agent = flow.agent()
    assert agent.sub is None and agent.derniere_activite is None and agent.derniere_connexion is None


@pytest.mark.parametrize("acr", ["eidas1", "eidas0", "https://proconnect.gouv.fr/assurance/self-asserted"])
def test_a_login_without_multi_factor_authentication_is_refused(flow: Login, hub: Hub, acr: str) -> None:
    flow.fake.acr = acr

    response = flow.login()

    assert response.status_code == 403
    assert response.json()["codeErreur"] == "NIVEAU_AUTHENTIFICATION_INSUFFISANT"
    assert "eidas2" in response.json()["message"]
    assert flow.last_event().reason == "acr_not_accepted" and flow.last_event().acr == acr
    agent = flow.agent()
    assert agent.sub is None and agent.derniere_activite is None


def test_a_missing_acr_is_refused(flow: Login, hub: Hub) -> None:
    flow.fake.id_token_changes = {"acr": None}
    assert flow.login().status_code == 403


def test_the_accepted_levels_are_configurable(flow: Login, hub: Hub) -> None:
    hub.services.settings = hub.services.settings.model_copy(update={"proconnect_accepted_acr": ["eidas3"]})
    assert flow.login().status_code == 403
    flow.fake.acr = "eidas3"
    assert flow.login().status_code == 200


# The person -----------------------------------------------------------------------------

GENERIC = {
    "codeHttp": 403,
    "codeErreur": "COMPTE_NON_AUTORISE",
    "message": (
        "Aucun compte actif ne correspond à cette identité sur Relais : "
        "contactez le référent de gestion des comptes (RGC) de votre organisation"
    ),
}


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        (FakeUser(email="inconnu@gironde.fr", siret=SIRET), "agent_inconnu"),
        (FakeUser(email=EMAIL, siret="99999999999999"), "siret_unknown"),
        (FakeUser(email=EMAIL, siret=""), "identity_incomplete"),
    ],
)
def test_unknown_people_are_refused(flow: Login, hub: Hub, user: FakeUser, reason: str) -> None:
    flow.fake.user = user
    response = flow.login()
    assert (response.status_code, response.json()) == (403, GENERIC)
    assert flow.last_event().reason == reason


def test_an_agent_of_another_organisation_is_not_matched_by_email(flow: Login, hub: Hub) -> None:
    flow.set_agent(email="autre@gironde.fr")
    add_agent(hub, identifiant="AGT-93", email=EMAIL, organisation="CD93")
    response = flow.login()
    assert (response.status_code, response.json()) == (403, GENERIC)
    assert flow.last_event().reason == "agent_inconnu"


@pytest.mark.parametrize("etat", [SUSPENDU_INACTIVITE, "bloque", "revoque", "supprime"])
def test_agents_who_are_not_active_get_no_token(flow: Login, hub: Hub, etat: str) -> None:
    assert flow.login().status_code == 200
    flow.set_agent(etat=etat)
    before = flow.agent().derniere_activite
    hub.clock.now += timedelta(hours=1)

    response = flow.login()

    assert (response.status_code, response.json()) == (403, GENERIC)
    assert flow.last_event().reason == f"agent_{etat}"
    assert flow.last_event().agent_id is None
    assert flow.agent().derniere_activite == before


def test_an_agent_past_two_months_of_inactivity_is_suspended_at_login_not_revived(flow: Login, hub: Hub) -> None:
    # The sweep has not run yet: the login itself must not let the agent through.
    assert flow.login().status_code == 200
    last = hub.clock.now
    hub.clock.now += timedelta(days=62)

    response = flow.login()

    assert (response.status_code, response.json()) == (403, GENERIC)
    assert flow.last_event().reason == "agent_inactivite"
    agent = flow.agent()
    assert agent.etat == SUSPENDU_INACTIVITE and agent.derniere_activite == last
    with hub.services.database.session() as session:
        suspensions = session.exec(
            select(AuditEvent).where(AuditEvent.operation == "habilitations.agent.suspendre")
        ).all()
    assert [event.target for event in suspensions] == [f"agent:{flow.agent_id}"]


def test_an_agent_within_two_months_logs_in_and_restarts_the_clock(flow: Login, hub: Hub) -> None:
    assert flow.login().status_code == 200
    hub.clock.now += timedelta(days=58)
    assert flow.login().status_code == 200
    assert flow.agent().derniere_activite == hub.clock.now


def test_a_suspended_agent_logging_in_for_the_first_time_is_not_bound(flow: Login, hub: Hub) -> None:
    flow.set_agent(etat=SUSPENDU_INACTIVITE)
    assert flow.login().status_code == 403
    assert flow.agent().sub is None


def test_an_email_already_bound_to_another_identity_is_not_rebound(flow: Login, hub: Hub) -> None:
    flow.set_agent(sub="an-earlier-proconnect-identity")
    response = flow.login()
    assert (response.status_code, response.json()) == (403, GENERIC)
    assert flow.last_event().reason == "agent_sub_conflict"
    assert flow.agent().sub == "an-earlier-proconnect-identity"


def test_two_agents_with_the_same_email_are_ambiguous(flow: Login, hub: Hub) -> None:
    add_agent(hub, identifiant="AGT-LOGIN-2", email=EMAIL)
    assert flow.login().status_code == 403
    assert flow.last_event().reason == "agent_ambiguous"


def test_a_technical_identity_cannot_log_in(flow: Login, hub: Hub) -> None:
    flow.set_agent(type=TECHNIQUE, client_id="cd33", sub=flow.fake.user.sub)
    assert flow.login().status_code == 403
    assert flow.last_event().reason == "agent_not_human"


# Configuration and the provider's availability ------------------------------------------


def test_login_is_disabled_until_configured(hub: Hub) -> None:
    for response in (
        hub.client.get(f"{BASE}/connexion", follow_redirects=False),
        hub.client.get(f"{BASE}/retour", params={"state": "s" * 43, "code": "c"}),
    ):
        assert response.status_code == 404
        assert response.json()["codeErreur"] == "CONNEXION_NON_CONFIGUREE"


def test_an_unreachable_provider_is_a_502(hub: Hub, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectTimeout("timed out"), url=re.compile(r"^https://down\.test/"))
    original = hub.services.settings
    hub.services.settings = original.model_copy(
        update={
            "proconnect_issuer": "https://down.test/api/v2",
            "proconnect_client_id": "x",
            "proconnect_client_secret": "y",
            "proconnect_redirect_uri": REDIRECT_URI,
        }
    )
    try:
        response = hub.client.get(f"{BASE}/connexion", follow_redirects=False)
    finally:
        hub.services.settings = original
    assert response.status_code == 502 and response.json()["codeErreur"] == "PROCONNECT_INDISPONIBLE"
    request = httpx_mock.get_request()
    assert request is not None and request.extensions["timeout"]["connect"] == original.proconnect_timeout_seconds


def test_expired_attempts_are_cleaned_up(flow: Login, hub: Hub) -> None:
    flow.start()
    hub.clock.now += timedelta(days=2)
    flow.start()
    with hub.services.database.session() as session:
        attempts = session.exec(select(LoginAttempt)).all()
    assert len(attempts) == 1 and attempts[0].created_at == hub.clock.now
    # Only a hash of the state is kept.
    assert len(attempts[0].state_hash) == 64


def test_every_answer_is_in_the_contract_when_login_is_configured(flow: Login, hub: Hub) -> None:
    """The conformance test runs with login disabled; this one with the fake provider behind."""
    schema = schemathesis.openapi.from_asgi(f"{BASE}/openapi.json", hub.client.app)
    # A partner token: the admin operations must refuse it, as documented (401).
    token = hub.token()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 4
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                excluded_checks=[positive_data_acceptance],
            )

        check()
    with hub.services.database.session() as session:
        # The login start was exercised with the provider answering (its 302 is in the contract).
        assert session.exec(select(LoginAttempt)).first() is not None
