"""The sanctions state machine against a small reference model, and concurrent events.

Every step runs in its own transaction, as a request would: committed when the rule
accepts, rolled back when it refuses. After every step the database must agree with the
model: same state, nothing changed by a refusal, and exactly the one GLI100 activity the
state calls for open, for the deciding CD.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlmodel import Session, col, select

from parcours import sanctions as domain
from parcours.ports import Refused
from parcours.tables import Activite, ConsequenceSanction, Usager
from relais.core.db import Database
from relais.core.french_dates import local_date
from relais.core.tables import Organisation

AGENT = "AGT-TEST"
_numeros = itertools.count(20_000_000_000)


def setup_organisations(database: Database) -> tuple[int, int]:
    """CD33 (decides for the usagers of 33) and FT-NAQ (attached to them, decides nothing)."""
    with database.transaction() as session:
        cd = Organisation(code="CD33", type="CD", libelle="Département 33", territoire=["33"])
        ft = Organisation(code="FT-NAQ", type="FT", libelle="France Travail NAQ", territoire=["33"])
        session.add(cd)
        session.add(ft)
        session.flush()
        assert cd.id is not None and ft.id is not None
        return cd.id, ft.id


def new_usager(database: Database) -> str:
    with database.transaction() as session:
        usager = Usager(
            numero_france_travail=str(next(_numeros)),
            date_naissance=date(1985, 7, 14),
            nom="NOM",
            prenom="PRENOM",
            adresses=[{"codeInseeCommune": "33063", "codePostal": "33000"}],
        )
        session.add(usager)
        session.flush()
        return usager.id


PROPOSITIONS: dict[str, dict[str, Any]] = {
    "SUSP_RSA": {
        "typeConsequenceSanction": "SUSP_RSA",
        "modaliteProposee": "P",
        "montantPropose": 40,
        "dureeProposee": 1,
    },
    "SUPP_RSA": {"typeConsequenceSanction": "SUPP_RSA"},
    "LEVEE_SUSP_RSA": {"typeConsequenceSanction": "LEVEE_SUSP_RSA"},
}
VALIDATION: dict[str, Any] = {
    "typeConsequenceSanctionValide": "SUSP_RSA",
    "modaliteDecisionValidee": "P",
    "montantValide": 60,
    "dureeValidee": 2,
}
# One defect at a time, with the codeSortie it must produce when the event is allowed.
DEFECTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "none": ({}, None),
    "taux": ({"modaliteDecisionValidee": "P", "montantValide": 12}, domain.C_VALEUR),
    "duree": ({"dureeValidee": 7}, domain.C_VALEUR),
    "futur": ({"__futur__": True}, domain.C_VALEUR),
}


@dataclass
class Modele:
    """What the reference says a consequence is."""

    type_: str
    etat: str
    type_valide: str | None = None
    radiation: bool = False
    etapes: int = 1  # historique entries
    version: int = 0


def transition_modele(m: Modele, evenement: str) -> str | None:
    table = {
        ("SUSP_RSA", "A_INSTRUIRE"): {"SAISIE_SANCTION": "A_TRAITER", "REFUS_SAISIE_SANCTION": "VALIDEE"},
        ("SUSP_RSA", "A_TRAITER"): {"VALID_SANCTION": "VALIDEE", "REFUS_SANCTION": "REFUSEE"},
        ("SUPP_RSA", "A_TRAITER"): {"VALID_SANCTION": "VALIDEE", "REFUS_SANCTION": "REFUSEE"},
        ("LEVEE_SUSP_RSA", "A_TRAITER"): {"VALID_LEVEE_SUSP": "VALIDEE", "REFUS_LEVEE_SUSP": "REFUSEE"},
    }
    if m.etat == "VALIDEE":
        ok = evenement == "ANNULATION_SANCTION" and m.type_valide in ("SUSP_RSA", "SUPP_RSA")
        return "ANNULEE" if ok else None
    return table.get((m.type_, m.etat), {}).get(evenement)


ACTIVITE_ATTENDUE = {
    ("SUSP_RSA", "A_INSTRUIRE"): "ACT366",
    ("SUSP_RSA", "A_TRAITER"): "ACT367",
    ("LEVEE_SUSP_RSA", "A_TRAITER"): "ACT369",
    ("SUPP_RSA", "A_TRAITER"): "ACT370",
}


@dataclass
class Context:
    database: Database
    cd_id: int
    ft_id: int
    usagers: list[str] = field(default_factory=list)


class SanctionsMachine(RuleBasedStateMachine):
    context: Context  # set by the test before the machine runs

    consequences = Bundle("consequences")

    def __init__(self) -> None:
        super().__init__()
        self.db = self.context.database
        self.usager_id = new_usager(self.db)
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        self.modele: dict[str, Modele] = {}

    def _session(self) -> Session:
        return self.db.session()

    def _organisation(self, session: Session, ft: bool = False) -> Organisation:
        organisation = session.get(Organisation, self.context.ft_id if ft else self.context.cd_id)
        assert organisation is not None
        return organisation

    def _tick(self) -> None:
        self.now += timedelta(hours=7)

    # Rules ------------------------------------------------------------------------------

    @rule(target=consequences, type_=st.sampled_from(sorted(PROPOSITIONS)))
    def proposer(self, type_: str) -> str:
        self._tick()
        with self.db.transaction() as session:
            usager = session.get(Usager, self.usager_id)
            assert usager is not None
            c = domain.proposer_consequence(session, usager, dict(PROPOSITIONS[type_]), now=self.now)
            identifiant = c.id
        self.modele[identifiant] = Modele(type_, domain.ETAT_INITIAL[type_])
        return identifiant

    @rule(target=consequences, type_=st.sampled_from(["SUSP_RSA", "SUPP_RSA"]))
    def decision_partenaire(self, type_: str) -> str:
        self._tick()
        body = {
            "dateNotificationDecisionSanction": local_date(self.now).isoformat(),
            "natureManquement": "N65",
            "rangManquement": "R1",
            "typeSanctionValide": type_,
            "modaliteDecisionValidee": "M",
            "montantValide": 100,
            "dureeValidee": 1,
        }
        with self.db.transaction() as session:
            usager = session.get(Usager, self.usager_id)
            assert usager is not None
            c = domain.decision_partenaire(
                session, usager, self._organisation(session), body, agent=AGENT, now=self.now
            )
            identifiant = c.id
        self.modele[identifiant] = Modele(type_, "VALIDEE", type_valide=type_)
        return identifiant

    @rule(
        identifiant=consequences,
        evenement=st.sampled_from(domain.TYPES_EVENEMENT),
        defect=st.sampled_from(sorted(DEFECTS)),
        omit=st.booleans(),
        par_ft=st.booleans(),
    )
    def evenement_quelconque(self, identifiant: str, evenement: str, defect: str, omit: bool, par_ft: bool) -> None:
        """Any event, often out of sequence, incomplete, wrong or from the wrong organisation."""
        self._evenement(identifiant, evenement, defect, omit, par_ft)

    @rule(identifiant=consequences, data=st.data())
    def evenement_autorise(self, identifiant: str, data: st.DataObject) -> None:
        """An event the state admits, well formed: moves the consequence along."""
        m = self.modele[identifiant]
        admis = [e for e in domain.TYPES_EVENEMENT if transition_modele(m, e) is not None]
        if admis:
            self._evenement(identifiant, data.draw(st.sampled_from(admis)), "none", False, False)

    def _evenement(self, identifiant: str, evenement: str, defect: str, omit: bool, par_ft: bool) -> None:
        self._tick()
        m = self.modele[identifiant]
        fields, defect_code = DEFECTS[defect]
        # The partner's "today" is Paris' (relais.core.french_dates): the clock ticks 7 hours at a
        # time and goes past 23:00 UTC, when Paris is already on the next day.
        today = local_date(self.now)
        jour = today + timedelta(days=1) if fields.get("__futur__") else today
        body: dict[str, Any] = {
            "identifiantConsequenceSanction": identifiant,
            "evenement": {"typeEvenement": evenement, "dateEvenement": jour.isoformat()},
            **VALIDATION,
            "motifEvenement": "Motif",
            **{k: v for k, v in fields.items() if not k.startswith("__")},
        }
        if evenement == "ANNULATION_SANCTION":
            body["typeConsequenceSanctionValide"] = m.type_valide
        if evenement == "VALID_SANCTION" and m.type_ == "SUPP_RSA":
            body["typeConsequenceSanctionValide"] = "SUPP_RSA"
        required = domain.OBLIGATOIRES.get(evenement, ())
        if omit and required:
            body.pop(required[0])

        cible = transition_modele(m, evenement)
        if par_ft:
            attendu: str | None = domain.C_ORGANISATION
        elif cible is None:
            attendu = domain.C_ETAT
        elif omit and required:
            attendu = domain.C_OBLIGATOIRE
        else:
            attendu = defect_code

        obtenu = self._apply(
            lambda s, u: domain.appliquer_evenement(
                s, u, self._organisation(s, ft=par_ft), body, agent=AGENT, now=self.now
            )
        )
        assert obtenu == attendu, (m, evenement, defect, omit, par_ft)
        if attendu is None:
            assert cible is not None
            if evenement == "REFUS_SAISIE_SANCTION":
                m.type_valide = m.type_
            elif evenement == "VALID_SANCTION":
                m.type_valide = body["typeConsequenceSanctionValide"]
            elif evenement == "VALID_LEVEE_SUSP":
                m.type_valide = "LEVEE_SUSP_RSA"
            m.etat = cible
            m.etapes += 1
            m.version += 1

    @rule(identifiant=consequences, par_ft=st.booleans())
    def radiation(self, identifiant: str, par_ft: bool) -> None:
        self._tick()
        m = self.modele[identifiant]
        if par_ft:
            attendu: str | None = domain.C_ORGANISATION
        elif m.etat != "VALIDEE" or m.type_valide not in ("SUSP_RSA", "SUPP_RSA"):
            attendu = domain.C_ETAT
        elif m.radiation:
            attendu = domain.C_RADIATION
        else:
            attendu = None
        body = {"identifiantConsequenceSanction": identifiant}
        obtenu = self._apply(
            lambda s, u: domain.demander_radiation(
                s, u, self._organisation(s, ft=par_ft), body, agent=AGENT, now=self.now
            )
        )
        assert obtenu == attendu, (m, par_ft)
        if attendu is None:
            m.radiation = True
            m.etapes += 1
            m.version += 1

    @rule(identifiant=st.text(alphabet="abcdef0123456789", min_size=1, max_size=8))
    def evenement_inconnu(self, identifiant: str) -> None:
        body = {
            "identifiantConsequenceSanction": identifiant,
            "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": local_date(self.now).isoformat()},
        }
        obtenu = self._apply(
            lambda s, u: domain.appliquer_evenement(s, u, self._organisation(s), body, agent=AGENT, now=self.now)
        )
        assert obtenu == domain.C_INCONNUE

    def _apply(self, action: Any) -> str | None:
        """Run one write as a request does; the codeSortie of its refusal, None if accepted."""
        with self._session() as session:
            usager = session.get(Usager, self.usager_id)
            try:
                action(session, usager)
            except Refused as refused:
                session.rollback()
                return refused.code
            session.commit()
            return None

    # Invariants ------------------------------------------------------------------------

    @invariant()
    def database_matches_the_model(self) -> None:
        with self._session() as session:
            rows = session.exec(select(ConsequenceSanction).where(ConsequenceSanction.usager_id == self.usager_id))
            stored = {c.id: c for c in rows}
            assert set(stored) == set(self.modele)
            ouvertes = session.exec(
                select(Activite).where(Activite.usager_id == self.usager_id, col(Activite.closed_at).is_(None))
            ).all()
            par_sujet: dict[str, list[Activite]] = {}
            for activite in ouvertes:
                par_sujet.setdefault(activite.sujet, []).append(activite)
            for identifiant, m in self.modele.items():
                c = stored[identifiant]
                assert c.etat in domain.ETATS
                assert (c.etat, c.type_consequence_validee, c.radiation_demandee_at is not None) == (
                    m.etat,
                    m.type_valide,
                    m.radiation,
                )
                assert c.version == m.version
                assert len(c.historique) == m.etapes
                attendue = ACTIVITE_ATTENDUE.get((m.type_, m.etat))
                activites = par_sujet.pop(f"consequence:{identifiant}", [])
                assert [a.code_activite for a in activites] == ([attendue] if attendue else [])
                for activite in activites:
                    assert activite.organisation_id == self.context.cd_id
                    assert domain.ATTRIBUT in {a["nom"] for a in activite.attributs}
            assert par_sujet == {}


def test_state_machine(database: Database) -> None:
    cd_id, ft_id = setup_organisations(database)
    SanctionsMachine.context = Context(database, cd_id, ft_id)
    run_state_machine_as_test(
        SanctionsMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


# Concurrency (PostgreSQL: SQLite serialises writers before they read) -----------------


def _a_traiter(database: Database, cd_id: int) -> tuple[str, str]:
    usager_id = new_usager(database)
    with database.transaction() as session:
        usager = session.get(Usager, usager_id)
        assert usager is not None
        c = domain.proposer_consequence(session, usager, dict(PROPOSITIONS["SUPP_RSA"]), now=datetime.now(UTC))
        return usager_id, c.id


def _event(identifiant: str, evenement: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "identifiantConsequenceSanction": identifiant,
        "evenement": {"typeEvenement": evenement, "dateEvenement": local_date(datetime.now(UTC)).isoformat()},
    }
    if evenement == "VALID_SANCTION":
        body.update(VALIDATION, typeConsequenceSanctionValide="SUPP_RSA")
    return body


def _apply_in_own_session(
    database: Database, usager_id: str, cd_id: int, body: dict[str, Any], barrier: threading.Barrier | None = None
) -> str | None:
    with database.session() as session:
        usager = session.get(Usager, usager_id)
        organisation = session.get(Organisation, cd_id)
        assert usager is not None
        if barrier is not None:
            barrier.wait(timeout=10)
        try:
            domain.appliquer_evenement(session, usager, organisation, body, agent=AGENT, now=datetime.now(UTC))
        except Refused as refused:
            session.rollback()
            return refused.code
        session.commit()
        return None


def _final(database: Database, identifiant: str) -> tuple[str, int, list[tuple[str, bool]]]:
    with database.session() as session:
        c = session.get(ConsequenceSanction, identifiant)
        assert c is not None
        activites = session.exec(select(Activite).where(Activite.sujet == f"consequence:{identifiant}")).all()
        return c.etat, len(c.historique), [(a.code_activite, a.closed_at is None) for a in activites]


@pytest.fixture
def postgresql(database: Database) -> Database:
    if database.dialect != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter: SQLite serialises writers (BEGIN IMMEDIATE)")
    return database


def test_concurrent_events_one_wins_the_other_gets_the_conflict_code(postgresql: Database) -> None:
    database = postgresql
    cd_id, _ = setup_organisations(database)
    usager_id, identifiant = _a_traiter(database, cd_id)

    # The first call holds the row lock, its decision not yet committed...
    winner = database.session()
    usager = winner.get(Usager, usager_id)
    assert usager is not None
    domain.appliquer_evenement(
        winner,
        usager,
        winner.get(Organisation, cd_id),
        _event(identifiant, "VALID_SANCTION"),
        agent=AGENT,
        now=datetime.now(UTC),
    )
    # ...when the second reads the same state and waits for the lock.
    result: list[str | None] = []
    loser = threading.Thread(
        target=lambda: result.append(
            _apply_in_own_session(database, usager_id, cd_id, _event(identifiant, "REFUS_SANCTION"))
        )
    )
    loser.start()
    loser.join(timeout=1.0)
    assert loser.is_alive(), "the second call must wait for the row lock"
    winner.commit()
    winner.close()
    loser.join(timeout=10)
    assert result == [domain.C_CONFLIT]
    etat, etapes, activites = _final(database, identifiant)
    assert (etat, etapes) == ("VALIDEE", 2)
    assert activites == [("ACT370", False)]


def test_simultaneous_events_exactly_one_applies(postgresql: Database) -> None:
    database = postgresql
    cd_id, _ = setup_organisations(database)
    for _ in range(5):
        usager_id, identifiant = _a_traiter(database, cd_id)
        barrier = threading.Barrier(2)
        results: dict[str, str | None] = {}

        def run(
            evenement: str, usager_id: str, identifiant: str, barrier: threading.Barrier, results: dict[str, str | None]
        ) -> None:
            body = _event(identifiant, evenement)
            results[evenement] = _apply_in_own_session(database, usager_id, cd_id, body, barrier)

        threads = [
            threading.Thread(target=run, args=(e, usager_id, identifiant, barrier, results))
            for e in ("VALID_SANCTION", "REFUS_SANCTION")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        outcomes = list(results.values())
        assert len(outcomes) == 2
        assert outcomes.count(None) == 1, results
        # The loser read the state before (C006) or after (C003) the winner committed.
        assert set(outcomes) - {None} <= {domain.C_CONFLIT, domain.C_ETAT}
        gagnant = next(e for e, r in results.items() if r is None)
        etat, etapes, activites = _final(database, identifiant)
        assert etat == ("VALIDEE" if gagnant == "VALID_SANCTION" else "REFUSEE")
        assert etapes == 2
        assert activites == [("ACT370", False)]
