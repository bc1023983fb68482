"""The orientation lifecycle against a small model, and two agents deciding at once (PostgreSQL).

The state machine drives the domain functions the API, the producer feed and the importer
share (``orientation_domain``), each call in its own transaction as a request would be, and
checks after every step that the database never holds an illegal state and that the
activities follow the orientations: one ACT382 while an orientation awaits its decision, one
ACT380 for the organisation that accompanies the open orientation, never a lost or a
duplicate one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete
from sqlmodel import Session, col, select

from parcours import orientation as orientation_domain
from parcours.ports import Refused
from parcours.tables import Activite, ContratEngagement, Orientation, Usager
from relais.core.db import Database
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation
from relais.demo.orientation_criteria import CRITERES_COMPLETS

# Organisations covering the usager's département (33), by organisme.
ACCOMPAGNANTS = {"CD": "CD33", "FT": "FT-NAQ"}


def seed(database: Database) -> str:
    """Two organisations serving Gironde and one usager living there; returns the usager's id."""
    with database.transaction() as session:
        session.add(Organisation(code="CD33", type="CD", libelle="Département 33", territoire=["33"]))
        session.add(Organisation(code="FT-NAQ", type="FT", libelle="France Travail NAQ", territoire=["33"]))
        usager = Usager(
            numero_france_travail="10000000001",
            date_naissance=date(1985, 7, 14),
            nom="NOM",
            prenom="PRENOM",
            adresses=[{"codeInseeCommune": "33063", "codePostal": "33000"}],
        )
        session.add(usager)
        session.flush()
        return usager.id


@dataclass
class Model:
    """What the lifecycle should look like: the pending orientation and the open one."""

    pending: str | None = None  # BROUILLON or EN_ATTENTE
    pending_ind: bool = False  # its preconised parcours is IND
    pending_organisme: str | None = None
    pending_criteria: set[str] = field(default_factory=set)
    open_organisme: str | None = None  # organisme_decision of the OUVERT orientation
    decided: int = 0  # orientations that reached OUVERT


def make_machine(database: Database, usager_id: str) -> type[RuleBasedStateMachine]:
    class OrientationLifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            with database.transaction() as session:
                for table in (Activite, ContratEngagement, Orientation):
                    session.execute(delete(table))
            self.model = Model()
            self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

        # Calls, each in its own transaction; a refusal rolls back everything it did.

        def run(self, action: Callable[[Session, Usager], Any]) -> Refused | None:
            self.now += timedelta(minutes=1)
            with database.session() as session:
                usager = session.get(Usager, usager_id)
                assert usager is not None
                try:
                    action(session, usager)
                except Refused as refused:
                    session.rollback()
                    return refused
                session.commit()
            return None

        @rule(
            parcours=st.sampled_from(["PED", "PSO", "PSP", "IND"]),
            organisme=st.sampled_from(["CD", "FT", "ML", "IND"]),
            etat=st.sampled_from(["EN_ATTENTE", "BROUILLON"]),
        )
        def preconiser(self, parcours: str, organisme: str, etat: str) -> None:
            payload = {"parcours": parcours, "organisme": organisme, "etat": etat, "origine": "INSCRIPTION_AUTO_CAF"}
            refused = self.run(lambda s, u: orientation_domain.preconiser(s, u, payload, now=self.now, agent="FT"))
            assert refused is None
            self.model.pending = etat
            self.model.pending_ind = "IND" in (parcours, organisme)
            self.model.pending_organisme = organisme
            self.model.pending_criteria = set()

        @rule(complete=st.booleans())
        def calculer(self, complete: bool) -> None:
            criteres = CRITERES_COMPLETS if complete else {"brsa": True}
            refused = self.run(lambda s, u: orientation_domain.calculer(s, u, criteres, now=self.now, agent="A"))
            assert refused is None
            if self.model.pending is None:
                self.model.pending_criteria = set()
            self.model.pending = "EN_ATTENTE"
            self.model.pending_criteria |= set(criteres)
            self.model.pending_ind = not set(CRITERES_COMPLETS) <= self.model.pending_criteria
            # The default rule: PED / FT for the complete criteria used here.
            self.model.pending_organisme = "IND" if self.model.pending_ind else "FT"

        @rule(
            accept=st.booleans(),
            complete=st.booleans(),
            counter=st.sampled_from(["CD", "FT", "ML"]),
        )
        def decider(self, accept: bool, complete: bool, counter: str) -> None:
            if accept:
                decision: dict[str, Any] = {"etat_decision": "ACCEPTEE"}
            else:
                decision = {"etat_decision": "REFUSEE", "parcours": "PSO", "organisme": counter}
                if complete:
                    decision["motif_refus"] = "APPRECIATION_DIFFERENTE"
            refused = self.run(lambda s, u: orientation_domain.decider(s, u, decision, now=self.now, agent="A"))
            model = self.model
            if not accept and not complete:
                expected: RefusalKind | None = RefusalKind.INVALID
            elif model.pending is None:
                expected = RefusalKind.CONFLICT if model.open_organisme is not None else RefusalKind.UNKNOWN
            elif model.pending == "BROUILLON" or (accept and model.pending_ind):
                expected = RefusalKind.CONFLICT
            else:
                expected = None
            assert (refused.kind if refused else None) == expected, refused and refused.code
            if expected is None:
                model.open_organisme = model.pending_organisme if accept else counter
                model.pending = None
                model.decided += 1

        @rule(organisme=st.sampled_from(["CD", "FT", "CE"]))
        def orienter(self, organisme: str) -> None:
            payload = {"parcours": "PSP", "organisme": organisme, "origine": "INSCRIPTION_CONSEILLER_CD"}
            refused = self.run(lambda s, u: orientation_domain.orienter(s, u, payload, now=self.now, agent="A"))
            assert refused is None
            self.model.pending = None
            self.model.open_organisme = organisme
            self.model.decided += 1

        # What must always hold.

        @invariant()
        def database_matches_the_model(self) -> None:
            with database.session() as session:
                orientations = list(session.exec(select(Orientation).where(Orientation.usager_id == usager_id)))
                activites = list(session.exec(select(Activite).where(Activite.usager_id == usager_id)))
                organisations = {o.id: o.code for o in session.exec(select(Organisation))}
            by_etat: dict[str, list[Orientation]] = {}
            for orientation in orientations:
                assert orientation.etat in orientation_domain.ETATS
                by_etat.setdefault(orientation.etat, []).append(orientation)
                expected_statut = "DECIDE" if orientation.date_entree_parcours is not None else "PRECONISE"
                assert orientation.statut == expected_statut
            pending = by_etat.get("BROUILLON", []) + by_etat.get("EN_ATTENTE", [])
            ouvertes = by_etat.get("OUVERT", [])
            assert len(pending) <= 1 and len(ouvertes) <= 1
            assert (pending[0].etat if pending else None) == self.model.pending
            assert (ouvertes[0].organisme_decision if ouvertes else None) == self.model.open_organisme
            decided = [o for o in orientations if o.statut == "DECIDE"]
            assert len(decided) == self.model.decided
            for orientation in by_etat.get("CLOTURE", []):
                assert orientation.motif_sortie_parcours in ("REORIENTATION", "PRECONISATION_REMPLACEE")

            open_act382 = [a for a in activites if a.code_activite == "ACT382" and a.closed_at is None]
            if self.model.pending == "EN_ATTENTE":
                assert [a.sujet for a in open_act382] == [f"orientation:{pending[0].id}"]
                assert organisations[open_act382[0].organisation_id] == "CD33"
            else:
                assert open_act382 == []
            # An ACT382 is never opened twice for one orientation.
            sujets = [a.sujet for a in activites if a.code_activite == "ACT382"]
            assert len(sujets) == len(set(sujets))

            open_act380 = [a for a in activites if a.code_activite == "ACT380" and a.closed_at is None]
            accompagnant = ACCOMPAGNANTS.get(self.model.open_organisme or "")
            assert [organisations[a.organisation_id] for a in open_act380] == ([accompagnant] if accompagnant else [])
            for activite in open_act380:
                assert activite.sujet == f"accompagnement:{usager_id}"
                assert activite.attributs == [{"nom": "motif", "valeur": "ACC"}]
            # One ACT380 per decision that had someone to accompany, none lost.
            assert len([a for a in activites if a.code_activite == "ACT380"]) <= self.model.decided

    return OrientationLifecycle


def test_orientation_lifecycle(database: Database) -> None:
    usager_id = seed(database)
    machine = make_machine(database, usager_id)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


def test_two_agents_deciding_at_once_one_wins(database: Database) -> None:
    """Two sessions decide the same pending orientation together: exactly one decision."""
    if database.dialect != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises writers")
    usager_id = seed(database)
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with database.transaction() as session:
        usager = session.get(Usager, usager_id)
        assert usager is not None
        orientation_domain.preconiser(session, usager, {"parcours": "PSO", "organisme": "CD"}, now=now)

    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def agent(name: str, organisme: str) -> None:
        with database.session() as session:
            usager = session.get(Usager, usager_id)
            assert usager is not None
            barrier.wait(timeout=10)
            try:
                decision = {"etat_decision": "REFUSEE", "motif_refus": "X", "parcours": "PED", "organisme": organisme}
                orientation_domain.decider(session, usager, decision, now=now, agent=name)
            except Refused as refused:
                session.rollback()
                with lock:
                    outcomes.append(f"refused:{refused.kind.value}:{refused.code}")
                return
            # Hold the locks a moment: the other agent is then waiting on them, not ahead.
            threading.Event().wait(0.3)
            session.commit()
            with lock:
                outcomes.append(f"won:{organisme}")

    threads = [threading.Thread(target=agent, args=(f"agent-{o}", o)) for o in ("CD", "FT")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(o.split(":")[0] for o in outcomes) == ["refused", "won"]
    assert "refused:conflict:ORIENTATION_NON_EN_ATTENTE" in outcomes
    winner = next(o.split(":")[1] for o in outcomes if o.startswith("won"))

    with database.session() as session:
        orientations = list(session.exec(select(Orientation)))
        activites = list(session.exec(select(Activite).order_by(col(Activite.code_activite))))
        organisations = {o.id: o.code for o in session.exec(select(Organisation))}
    assert [(o.etat, o.organisme_decision) for o in orientations] == [("OUVERT", winner)]
    assert orientations[0].version == 1
    [act380, act382] = activites
    assert act382.closed_at is not None and act382.closed_by == "decisionOrientation"
    assert act380.closed_at is None and organisations[act380.organisation_id] == ACCOMPAGNANTS[winner]
