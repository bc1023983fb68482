"""The contrat d'engagement lifecycle against a small model (hypothesis stateful testing).

Rules are the API calls (POST/PATCH signer, POST/PATCH refuser) and the domain events
(cessation d'inscription, réinscription, réorientation, time passing, the closure batch),
in any order. After each step the contract read through the API must be the model's, a
refused call must change nothing (same ``version``), and an accepted one moves it exactly once.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete
from sqlmodel import select

from parcours import contrat as contrat_domain
from parcours.contrat import add_months
from parcours.ports import Refused
from parcours.tables import ContratEngagement
from relais.core.ratelimit import RateLimiter
from tests.parcours.test_rendez_vous_partenaire import (  # noqa: F401 - fixtures
    START,
    Api,
    hub,
    shared_hub,
    usager_id,
)
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import CONTRAT_ENGAGEMENT_SCOPES

BASE = "/partenaire/contrat-engagement/v1"


@dataclass
class Model:
    etat: str | None = None
    avant: str | None = None
    suspendu_le: date | None = None

    def settle(self, today: date) -> None:
        """The 12-month closure, which Relais applies whenever the contract is touched."""
        if self.etat == "SUSPENDU" and self.suspendu_le and today >= add_months(self.suspendu_le, 12):
            self.etat, self.avant = "CLOTURE", None


class ContratLifecycle(RuleBasedStateMachine):
    hub: Hub

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.hub.clock.now = START
        self.usager = usager_id(self.hub, GIRONDE)
        with self.hub.services.database.transaction() as session:
            session.exec(delete(ContratEngagement))
        self.api = Api(self.hub, scope=CONTRAT_ENGAGEMENT_SCOPES)
        self.version = 0

    # Helpers ---------------------------------------------------------------------------

    @property
    def today(self) -> date:
        return self.hub.clock.today()

    def _call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.hub.client.request(method, f"{BASE}{path}", json=body, headers=self.api.headers(GIRONDE))

    def _moment(self) -> str:
        return (self.hub.clock.now - timedelta(minutes=1)).isoformat()

    def _stored_version(self) -> int:
        with self.hub.services.database.session() as session:
            row = session.exec(select(ContratEngagement).where(ContratEngagement.usager_id == self.usager)).first()
            return 0 if row is None else row.version

    def _expect(self, response: httpx.Response, *, moved_to: str | None, refusal: str | None) -> None:
        """Either the call moved the contract to ``moved_to`` once, or it was refused, changing nothing."""
        before = self.version
        if refusal is None:
            assert response.status_code == 200, response.text
            assert response.json()["etat"] == moved_to
            self.model.etat, self.model.avant, self.model.suspendu_le = moved_to, None, None
            after = self._stored_version()
            assert after >= before + 1
            self.version = after
        else:
            assert response.status_code == 409, response.text
            assert response.json()["codeErreur"] == refusal
            # A closure noticed by the refused call is rolled back with it.
            assert self._stored_version() == before

    def _event(self, function: Any) -> None:
        with self.hub.services.database.transaction() as session:
            function(session, self.usager, now=self.hub.clock.now)
        self.version = self._stored_version()

    # API rules ---------------------------------------------------------------------------

    @rule()
    def post_signer(self) -> None:
        self.model.settle(self.today)
        response = self._call("POST", "/signer", {"dateSignature": self._moment()})
        ok = self.model.etat in (None, "CLOTURE")
        self._expect(response, moved_to="SIGNE", refusal=None if ok else "CONTRAT_EXISTANT")

    @rule()
    def post_refuser(self) -> None:
        self.model.settle(self.today)
        response = self._call("POST", "/refuser", {"dateRefus": self._moment()})
        ok = self.model.etat in (None, "CLOTURE")
        self._expect(response, moved_to="REFUSE", refusal=None if ok else "CONTRAT_EXISTANT")

    @rule()
    def patch_signer(self) -> None:
        self.model.settle(self.today)
        response = self._call("PATCH", "/signer", {"dateSignature": self._moment()})
        if self.model.etat is None:
            refusal: str | None = "CONTRAT_INEXISTANT"
        else:
            refusal = None if self.model.etat in ("A_SIGNER", "REFUSE") else "ETAT_CONTRAT_INCOMPATIBLE"
        self._expect(response, moved_to="SIGNE", refusal=refusal)

    @rule()
    def patch_refuser(self) -> None:
        self.model.settle(self.today)
        response = self._call("PATCH", "/refuser", {"dateRefus": self._moment()})
        if self.model.etat is None:
            refusal: str | None = "CONTRAT_INEXISTANT"
        else:
            refusal = None if self.model.etat == "A_SIGNER" else "ETAT_CONTRAT_INCOMPATIBLE"
        self._expect(response, moved_to="REFUSE", refusal=refusal)

    # Domain events ---------------------------------------------------------------------

    @rule()
    def reorientation(self) -> None:
        self.model.settle(self.today)
        self._event(contrat_domain.remettre_a_signer)
        if self.model.etat in ("SIGNE", "REFUSE"):
            self.model.etat = "A_SIGNER"

    @rule()
    def cessation(self) -> None:
        self.model.settle(self.today)
        self._event(contrat_domain.suspendre_sur_cessation)
        if self.model.etat == "SIGNE":
            self.model.etat, self.model.avant, self.model.suspendu_le = "SUSPENDU", "SIGNE", self.today

    @rule()
    def reinscription(self) -> None:
        self.model.settle(self.today)
        self._event(contrat_domain.reprendre_sur_reinscription)
        if self.model.etat == "SUSPENDU":
            self.model.etat, self.model.avant, self.model.suspendu_le = self.model.avant, None, None

    @rule(days=st.sampled_from([1, 30, 180, 364, 365, 366, 400]))
    def time_passes(self, days: int) -> None:
        self.hub.clock.now += timedelta(days=days)
        # Access tokens and jetons have expired: a new session, as a client would do.
        self.api = Api(self.hub, scope=CONTRAT_ENGAGEMENT_SCOPES)

    @rule(days=st.sampled_from([30, 364, 365, 366]))
    def time_passes_and_the_batch_runs(self, days: int) -> None:
        """The closure batch, before anything reads the contract: it closes exactly what is due."""
        self.hub.clock.now += timedelta(days=days)
        self.api = Api(self.hub, scope=CONTRAT_ENGAGEMENT_SCOPES)
        was_suspended = self.model.etat == "SUSPENDU"
        self.model.settle(self.today)
        expected = 1 if was_suspended and self.model.etat == "CLOTURE" else 0
        with self.hub.services.database.transaction() as session:
            assert contrat_domain.cloturer_suspensions_echues(session, now=self.hub.clock.now) == expected
        self.version = self._stored_version()

    # What a client sees ------------------------------------------------------------------

    @invariant()
    def lecture_matches_the_model(self) -> None:
        self.model.settle(self.today)
        response = self.hub.client.get(f"{BASE}/lecture", headers=self.api.headers(GIRONDE))
        self.version = self._stored_version()
        if self.model.etat is None:
            assert response.status_code == 204, response.text
            return
        assert response.status_code == 200, response.text
        contrat = response.json()
        assert contrat["etat"] == self.model.etat
        assert contrat["etatAvantSuspension"] == self.model.avant
        expected_suspension = None if self.model.suspendu_le is None else self.model.suspendu_le.isoformat()
        assert contrat["dateSuspension"] == expected_suspension
        if self.model.etat == "CLOTURE":
            assert contrat["dateCloture"] is not None
            assert date.fromisoformat(contrat["dateCloture"]) <= self.today
        if self.model.etat == "SIGNE":
            assert contrat["dateSignature"] is not None
            assert datetime.fromisoformat(contrat["dateSignature"]) <= self.hub.clock.now


def test_contrat_lifecycle(hub: Hub) -> None:  # noqa: F811
    ContratLifecycle.hub = hub
    # Each call in a window of its own: the machine calls faster than clients may (10 tokens/s).
    hub.services.rate_limiter = RateLimiter(clock=itertools.count().__next__)
    run_state_machine_as_test(
        ContratLifecycle,
        settings=settings(
            max_examples=40,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


def test_two_agents_signing_at_once_sign_once(hub: Hub) -> None:  # noqa: F811
    """PostgreSQL row locks: the second signature waits for the first, then finds it signed (409)."""
    if hub.services.database.dialect != "postgresql":
        pytest.skip("SQLite serialises writers: no concurrent transition to race")
    uid = usager_id(hub, GIRONDE)
    now = hub.clock.now
    with hub.services.database.transaction() as session:
        session.exec(delete(ContratEngagement))
        contrat_domain.enregistrer_contrat(session, uid, {"etat": "A_SIGNER"}, now=now)
    locked = threading.Event()
    outcomes: dict[str, str] = {}

    def sign(name: str, hold: bool) -> None:
        try:
            with hub.services.database.transaction() as session:
                contrat_domain.signer(
                    session,
                    uid,
                    date_signature=now - timedelta(minutes=1),
                    agent=contrat_domain.agent_of(name, name, name),
                    organisme="CD",
                    contenu={},
                    now=now,
                )
                if hold:
                    locked.set()
                    time.sleep(0.5)
            outcomes[name] = "SIGNE"
        except Refused as refused:
            outcomes[name] = refused.code

    first = threading.Thread(target=sign, args=("premier", True))
    first.start()
    assert locked.wait(10)
    second = threading.Thread(target=sign, args=("second", False))
    second.start()
    first.join(10)
    second.join(10)
    assert outcomes == {"premier": "SIGNE", "second": "ETAT_CONTRAT_INCOMPATIBLE"}
    with hub.services.database.session() as session:
        row = session.exec(select(ContratEngagement).where(ContratEngagement.usager_id == uid)).one()
    assert row.etat == "SIGNE"
    assert row.agent == {"signature": contrat_domain.agent_of("premier", "premier", "premier")}
