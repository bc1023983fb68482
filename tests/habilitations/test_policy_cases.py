"""The policy table (policy_cases.yaml) asserted through the real app, in both directions:
each listed case answers as listed, and whatever the table does not allow is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from habilitations import agent_states, agents, designations, grants
from habilitations.inactivity import inactivity_due_date
from habilitations.models import Agent
from tests.habilitations.world import API_SCOPES as _KNOWN_SCOPES
from tests.habilitations.world import OPERATOR, RECORDER, events, organisation_id, request_id
from tests.support.hub import Hub
from tests.support.people import GIRONDE, SEINE_SAINT_DENIS
from tests.support.scopes import INFOS, INFOS_SCOPES, RECHERCHE, RECHERCHE_SCOPES, STATUT, STATUT_SCOPES

TABLE = yaml.safe_load((Path(__file__).parent / "policy_cases.yaml").read_text(encoding="utf-8"))
OPERATIONS = ("recherche", "informations", "statut")
USAGERS = {"gironde": GIRONDE, "seine_saint_denis": SEINE_SAINT_DENIS}
TOKEN_SCOPES = {"cd33-recherche": RECHERCHE_SCOPES}
ALL_CLIENT_SCOPES = f"{RECHERCHE_SCOPES} {INFOS_SCOPES} {STATUT_SCOPES}"


@dataclass(frozen=True)
class Case:
    subject: str
    operation: str
    usager: str
    expected: str
    client: str = "cd33"

    @property
    def id(self) -> str:
        return f"{self.subject}-{self.operation}-{self.usager}-{self.client}"


CASES = [Case(**case) for case in TABLE["cases"]]


@pytest.fixture(scope="module")
def world(module_hub: Hub) -> Hub:
    """The table's subjects, made once for the module through the lifecycle."""
    now = module_hub.clock.now
    _tokens.clear()
    _jetons.clear()
    with module_hub.services.database.transaction() as session:
        for subject in TABLE["subjects"].values():
            if subject.get("create", True):
                _make(session, subject, now)
    return module_hub


def _make(session: Any, subject: dict[str, Any], now: Any) -> None:
    organisation = organisation_id(session, subject.get("organisation", "CD33"))
    if "client" in subject:
        agent = agents.create_technical_identity(
            session,
            OPERATOR,
            client_id=subject["client"],
            nom="Table",
            identifiant=subject["identifiant"],
            now=now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    else:
        agent = agents.create_agent(
            session,
            OPERATOR,
            organisation_id=organisation,
            identifiant=subject["identifiant"],
            nom="Table",
            statut_emploi="fonctionnaire",
            now=now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    assert agent.id is not None
    if "role" in subject:
        designations.designate(
            session,
            OPERATOR,
            organisation_id=organisation,
            agent_id=agent.id,
            role=subject["role"],
            acte_engagement_le=date(2025, 1, 6),
            now=now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    for api in subject.get("grants", []):
        grants.grant_habilitation(
            session,
            OPERATOR,
            agent_id=agent.id,
            api=api,
            scopes=_KNOWN_SCOPES[api],
            finalite="Table",
            now=now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    etat = subject.get("etat")
    if etat == "bloque":
        agent_states.block_agent(
            session, OPERATOR, agent.id, motif="usage_suspect", now=now, recorder=RECORDER, request_id=request_id()
        )
    elif etat == "suspendu_inactivite":
        agent_states.suspend_for_inactivity(
            session, agent.id, due=inactivity_due_date(agent), now=now, recorder=RECORDER, request_id=request_id()
        )
    elif etat == "revoque":
        agent_states.revoke_agent(
            session, OPERATOR, agent.id, motif="depart", now=now, recorder=RECORDER, request_id=request_id()
        )
    # Like the dataset's agents: clear of the inactivity rule, which test_inactivity covers.
    session.get(Agent, agent.id).derniere_activite = now.replace(year=now.year + 30)


# Tokens and jetons of the module, fetched once: the token endpoint limits its callers.
_tokens: dict[str, str] = {}
_jetons: dict[tuple[str, str], str] = {}


def _token(hub: Hub, client: str) -> str:
    if client not in _tokens:
        _tokens[client] = hub.token(client, TOKEN_SCOPES.get(client, ALL_CLIENT_SCOPES))
    return _tokens[client]


def _jeton(hub: Hub, usager: str, client: str) -> str:
    if (usager, client) not in _jetons:
        _jetons[usager, client] = hub.jeton(USAGERS[usager], client)
    return _jetons[usager, client]


def call(hub: Hub, case: Case) -> httpx.Response:
    identifiant = TABLE["subjects"][case.subject]["identifiant"]
    token = _token(hub, case.client)
    headers = {**hub.headers(token), "pa-identifiant-agent": identifiant}
    person = USAGERS[case.usager]
    if case.operation == "recherche":
        return hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": person.numero}, headers=headers
        )
    headers["ft-jeton-usager"] = _jeton(hub, case.usager, "cd33" if case.client == "cd33-recherche" else case.client)
    return hub.client.get(INFOS if case.operation == "informations" else STATUT, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_listed_case(world: Hub, case: Case) -> None:
    response = call(world, case)
    event = events(world)[-1]
    if case.expected == "allow":
        assert response.status_code == 200, response.text
        assert event.decision == "allowed" and event.habilitation_id is not None
        assert event.agent_identifiant == TABLE["subjects"][case.subject]["identifiant"]
    else:
        assert response.status_code == 403, response.text
        assert (event.decision, event.reason) == ("denied", case.expected.removeprefix("deny:"))
        assert not response.text.count(TABLE["subjects"][case.subject]["identifiant"])


ALLOWED = {
    (c.subject, c.operation) for c in CASES if c.expected == "allow" and (c.usager, c.client) == ("gironde", "cd33")
}
UNLISTED = [
    (subject, operation)
    for subject in TABLE["subjects"]
    for operation in OPERATIONS
    if (subject, operation) not in ALLOWED
]


@pytest.mark.parametrize(("subject", "operation"), UNLISTED, ids=[f"{s}-{o}" for s, o in UNLISTED])
def test_whatever_the_table_does_not_allow_is_refused(world: Hub, subject: str, operation: str) -> None:
    response = call(world, Case(subject, operation, "gironde", "deny"))
    assert response.status_code == 403, response.text
    assert events(world)[-1].decision == "denied"
