"""Hypothesis drives random sequences of lifecycle actions against a plain-Python model.

After every step, for every agent and API, the policy (what the next request runs) must agree
with the model: no access without an active grant of an active agent covering the scopes;
suspended, blocked, revoked or deleted agents are denied; an RGC gains nothing from the
role. Every step writes exactly the audit events the model expects: one per transition.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlmodel import Session, col, func, select

from audit.models import AuditEvent
from habilitations import agent_states, agents, designations, grants, subscriptions
from habilitations.clients import create_client
from habilitations.models import (
    ACTIF,
    BLOQUE,
    REVOQUE,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    SUPPRIME,
    SUSPENDU_INACTIVITE,
    Agent,
    Habilitation,
)
from habilitations.policy import decide
from habilitations.profiles import is_useless
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal, current_roles
from relais.core.db import Database
from relais.core.tables import Client, Organisation
from tests.habilitations.world import RECORDER, request_id

NOW = datetime(2026, 6, 10, 9, tzinfo=UTC)
APIS = {
    "rechercher-usager-v2": ("api_rechercher-usagerv2", "profil_accedant", "rechercheusager"),
    "statut-usager-v2": ("api_contrat-usagerv2", "profil_accedant", "statutcontratusager"),
    # Dropping the last scope still leaves one operation callable (a reduction the rules allow).
    "gestion-sanctions-rsa-v1": ("api_gestion-sanctions-rsav1", "gestiondesmanquements", "demandeRadiation"),
}
OPERATOR = Principal.command_line()
# Agents 0-2 are plain agents, 3 the titular RGC, 4 the deputy.
PEOPLE = range(5)
TITULAR, DEPUTY = 3, 4


@dataclass
class Model:
    state: dict[int, str] = field(default_factory=lambda: dict.fromkeys(PEOPLE, ACTIF))
    # (person, api) -> scopes of the active grant.
    grants: dict[tuple[int, str], tuple[str, ...]] = field(default_factory=dict)
    blocked_grants: set[tuple[int, str]] = field(default_factory=set)
    designated: set[int] = field(default_factory=lambda: {TITULAR, DEPUTY})

    def may_access(self, person: int, api: str) -> bool:
        scopes = self.grants.get((person, api))
        return self.state[person] == ACTIF and scopes is not None and set(APIS[api]) <= set(scopes)

    def close_all(self, person: int) -> int:
        """Grants revoked and designations ended with the agent: one transition each."""
        closed = [key for key in (*self.grants, *self.blocked_grants) if key[0] == person]
        for key in closed:
            self.grants.pop(key, None)
            self.blocked_grants.discard(key)
        ended = 1 if person in self.designated else 0
        self.designated.discard(person)
        return len(closed) + ended


def test_lifecycle_matches_the_model(database: Database) -> None:
    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            code = f"T{uuid.uuid4().hex[:8]}"
            with database.transaction() as session:
                organisation = Organisation(code=code, type="CD", libelle="Test", territoire=["33"])
                session.add(organisation)
                session.flush()
                assert organisation.id is not None
                self.organisation_id = organisation.id
                scopes = sorted({scope for scopes in APIS.values() for scope in scopes})
                client, _ = create_client(session, client_id=f"c-{code}", organisation_code=code, scopes=scopes)
                self.client_id = client.client_id
                for api, api_scopes in APIS.items():
                    subscriptions.set_subscription(
                        session,
                        OPERATOR,
                        organisation_id=organisation.id,
                        api=api,
                        scopes=api_scopes,
                        now=NOW,
                        recorder=RECORDER,
                        request_id=request_id(),
                    )
                self.agent_ids: list[int] = []
                for person in PEOPLE:
                    agent = agents.create_agent(
                        session,
                        OPERATOR,
                        organisation_id=organisation.id,
                        identifiant=f"P{person}",
                        nom="Test",
                        statut_emploi="fonctionnaire",
                        now=NOW,
                        recorder=RECORDER,
                        request_id=request_id(),
                    )
                    assert agent.id is not None
                    self.agent_ids.append(agent.id)
                for person, role in ((TITULAR, RGC_TITULAIRE), (DEPUTY, RGC_SUPPLEANT)):
                    designations.designate(
                        session,
                        OPERATOR,
                        organisation_id=organisation.id,
                        agent_id=self.agent_ids[person],
                        role=role,
                        acte_engagement_le=date(2025, 1, 6),
                        now=NOW,
                        recorder=RECORDER,
                        request_id=request_id(),
                    )

        # Running an action -------------------------------------------------------------

        def run(self, expected_events: int | None, action: object, *args: object, **kwargs: object) -> None:
            """``expected_events`` None: the model says the action is refused (nothing written)."""
            with database.session() as session:
                before = _event_count(session)
            try:
                with database.transaction() as session:
                    action(session, *args, now=NOW, **kwargs)  # type: ignore[operator]
            except TransitionRefused:
                assert expected_events is None, f"refused although the model allows it: {action}"
                expected_events = 0
            else:
                assert expected_events is not None, f"allowed although the model refuses it: {action}"
            with database.session() as session:
                assert _event_count(session) - before == expected_events

        def actor(self, who: str) -> Principal:
            if who == "operator":
                return OPERATOR
            person = TITULAR if who == "titular" else DEPUTY
            agent_id = self.agent_ids[person]
            with database.session() as session:
                agent = session.get(Agent, agent_id)
                assert agent is not None
                assert agent.etat == ACTIF
                roles = current_roles(session, agent_id, NOW)
            return Principal(agent_id=agent_id, organisation_id=self.organisation_id, organisation="T", roles=roles)

        # Rules -------------------------------------------------------------------------

        @rule(
            person=st.sampled_from(PEOPLE),
            api=st.sampled_from(list(APIS)),
            who=st.sampled_from(["operator", "titular", "deputy"]),
        )
        def grant(self, person: int, api: str, who: str) -> None:
            actor_person = {"titular": TITULAR, "deputy": DEPUTY}.get(who)
            if actor_person is not None and (
                self.model.state[actor_person] != ACTIF or actor_person not in self.model.designated
            ):
                return  # an RGC who left or is suspended cannot log in to act
            allowed = (
                self.model.state[person] == ACTIF
                and (person, api) not in self.model.grants
                and (person, api) not in self.model.blocked_grants
                and actor_person != person
            )
            self.run(
                1 if allowed else None,
                lambda session, now: grants.grant_habilitation(
                    session,
                    self.actor(who),
                    agent_id=self.agent_ids[person],
                    api=api,
                    scopes=APIS[api],
                    finalite="Test",
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                ),
            )
            if allowed:
                self.model.grants[person, api] = APIS[api]

        @rule(person=st.sampled_from(PEOPLE), api=st.sampled_from(list(APIS)))
        def reduce(self, person: int, api: str) -> None:
            scopes = self.model.grants.get((person, api))
            if scopes is None:
                return
            kept = scopes[:-1]
            # A reduction that would leave no operation callable is refused like such a grant.
            allowed = len(scopes) > 1 and not is_useless(api, kept)
            self.run(
                1 if allowed else None,
                lambda session, now: grants.reduce_habilitation(
                    session,
                    OPERATOR,
                    self._grant_id(session, person, api),
                    scopes=kept,
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                ),
            )
            if allowed:
                self.model.grants[person, api] = kept

        @rule(person=st.sampled_from(PEOPLE), api=st.sampled_from(list(APIS)))
        def revoke_grant(self, person: int, api: str) -> None:
            if (person, api) not in self.model.grants and (person, api) not in self.model.blocked_grants:
                return
            self.run(
                1,
                lambda session, now: grants.revoke_habilitation(
                    session,
                    OPERATOR,
                    self._grant_id(session, person, api),
                    motif="test",
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                ),
            )
            self.model.grants.pop((person, api), None)
            self.model.blocked_grants.discard((person, api))

        @rule(person=st.sampled_from(PEOPLE), api=st.sampled_from(list(APIS)))
        def block_grant(self, person: int, api: str) -> None:
            if (person, api) not in self.model.grants:
                return
            self.run(
                1,
                lambda session, now: grants.block_habilitation(
                    session,
                    OPERATOR,
                    self._grant_id(session, person, api),
                    motif="test",
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                ),
            )
            self.model.grants.pop((person, api))
            self.model.blocked_grants.add((person, api))

        @rule(person=st.sampled_from(PEOPLE))
        def suspend(self, person: int) -> None:
            allowed = self.model.state[person] == ACTIF
            self.run(
                1 if allowed else None,
                lambda session, now: agent_states.suspend_for_inactivity(
                    session, self.agent_ids[person], due=NOW.date(), now=now, recorder=RECORDER, request_id=request_id()
                ),
            )
            if allowed:
                self.model.state[person] = SUSPENDU_INACTIVITE

        @rule(person=st.sampled_from(PEOPLE))
        def block(self, person: int) -> None:
            allowed = self.model.state[person] in (ACTIF, SUSPENDU_INACTIVITE)
            self.run(
                1 if allowed else None,
                lambda session, now: agent_states.block_agent(
                    session,
                    OPERATOR,
                    self.agent_ids[person],
                    motif="test",
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                ),
            )
            if allowed:
                self.model.state[person] = BLOQUE

        @rule(person=st.sampled_from(PEOPLE), delete=st.booleans())
        def revoke_or_delete(self, person: int, delete: bool) -> None:
            state = self.model.state[person]
            allowed = state != SUPPRIME if delete else state not in (REVOQUE, SUPPRIME)
            expected = 1 + self.model.close_all(person) if allowed else None
            function = agent_states.delete_agent if delete else agent_states.revoke_agent
            self.run(
                expected,
                lambda session, now: function(
                    session,
                    OPERATOR,
                    self.agent_ids[person],
                    motif="test",
                    now=now,
                    recorder=RECORDER,
                    request_id=request_id(),
                ),
            )
            if allowed:
                self.model.state[person] = SUPPRIME if delete else REVOQUE

        @rule(person=st.sampled_from(PEOPLE))
        def reactivate(self, person: int) -> None:
            allowed = self.model.state[person] in (SUSPENDU_INACTIVITE, BLOQUE, REVOQUE)
            self.run(
                1 if allowed else None,
                lambda session, now: agent_states.reactivate_agent(
                    session, OPERATOR, self.agent_ids[person], now=now, recorder=RECORDER, request_id=request_id()
                ),
            )
            if allowed:
                self.model.state[person] = ACTIF

        # What the next request sees ----------------------------------------------------

        @invariant()
        def policy_agrees_with_the_model(self) -> None:
            with database.session() as session:
                client = session.exec(select(Client).where(Client.client_id == self.client_id)).one()
                for person in PEOPLE:
                    for api, scopes in APIS.items():
                        decision = decide(
                            session,
                            client=client,
                            identifiant=f"P{person}",
                            api=api,
                            required_scopes=scopes,
                            now=NOW,
                            recorder=RECORDER,
                            request_id=request_id(),
                        )
                        assert decision.allowed == self.model.may_access(person, api), (person, api, decision)
                session.rollback()

        def _grant_id(self, session: Session, person: int, api: str) -> str:
            grant = session.exec(
                select(Habilitation).where(
                    Habilitation.agent_id == self.agent_ids[person],
                    Habilitation.api == api,
                    col(Habilitation.etat).in_((ACTIF, BLOQUE)),
                )
            ).one()
            return grant.id

    run_state_machine_as_test(Lifecycle, settings=settings(max_examples=25, stateful_step_count=20, deadline=None))


def _event_count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(AuditEvent)).one())
