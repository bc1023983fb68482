"""Gestion des sanctions RSA v1: France Travail proposes, the usager's CD decides.

Proposals are set up with the domain function the producer feed uses; everything else goes
through the API, and the GLI100 activities are observed in the Activite table.

One hub serves the whole module (building the app with every spec takes seconds): each test
works on consequences of its own, counts only what it created, and puts back anything else
it changes (the clock, an attachment).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlmodel import col, select

from parcours import sanctions as domain
from parcours.ports import Refused
from parcours.tables import Activite, ConsequenceSanction, Usager, UsagerOrganisation
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation
from tests.support.ft_schemas import assert_ft_shape
from tests.support.hub import Hub
from tests.support.people import GIRONDE, RATTACHE_EXPLICITE, SEINE_SAINT_DENIS, Person
from tests.support.scopes import RECHERCHE, SANCTIONS_SCOPES

BASE = "/partenaire/gestion-sanctions-rsa/v1"
DETAIL = f"{BASE}/detailManquement"
EVENEMENT = f"{BASE}/evenementSanctionRSA"
DECISION = f"{BASE}/decisionSanctionRSAPartenaire"
RADIATION = f"{BASE}/demandeRadiation"
BASE_SCOPES = "api_gestion-sanctions-rsav1 gestiondesmanquements"

PROPOSITION_SUSPENSION: dict[str, Any] = {
    "typeConsequenceSanction": "SUSP_RSA",
    "modaliteProposee": "P",
    "montantPropose": 50,
    "dureeProposee": 2,
    "natureManquement": "N65",
    "rangManquement": "R1",
    "dateManquement": "2026-01-15",
}
PROPOSITION_SUPPRESSION: dict[str, Any] = {
    "typeConsequenceSanction": "SUPP_RSA",
    "natureManquement": "N65",
    "rangManquement": "R3",
}
PROPOSITION_LEVEE: dict[str, Any] = {
    "typeConsequenceSanction": "LEVEE_SUSP_RSA",
    "natureManquement": "N65",
    "rangManquement": "R1",
}
DECISION_BODY: dict[str, Any] = {
    "dateNotificationDecisionSanction": "2026-01-20",
    "natureManquement": "N65",
    "rangManquement": "R2",
    "typeSanctionValide": "SUSP_RSA",
    "modaliteDecisionValidee": "P",
    "montantValide": 50,
    "dureeValidee": 4,
}
VALIDATION: dict[str, Any] = {
    "typeConsequenceSanctionValide": "SUSP_RSA",
    "modaliteDecisionValidee": "M",
    "montantValide": 120.5,
    "dureeValidee": 3,
}


@pytest.fixture(scope="module")
def hub(module_hub: Hub) -> Hub:
    return module_hub


class Api:
    """One client (and its organisation) calling the sanctions API about one usager."""

    # Access tokens by (client, scope, clock): like real callers, reuse them rather than
    # hit the token endpoint's per-client attempt limit (10 per second).
    _tokens: dict[tuple[str, str, datetime], str] = {}

    def __init__(self, hub: Hub, person: Person = GIRONDE, client_id: str = "cd33", scope: str = SANCTIONS_SCOPES):
        self.hub = hub
        key = (client_id, scope, hub.clock.now)
        if key not in self._tokens:
            self._tokens[key] = hub.token(client_id, f"{scope} api_rechercher-usagerv2 rechercheusager profil_accedant")
        token = self._tokens[key]
        response = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": person.numero},
            headers=hub.headers(token),
        )
        assert response.json()["codeRetour"] == "S001", response.text
        # These tests read Relais' additions (état, historique...): they opt in.
        jeton = response.json()["jetonUsager"]
        self.headers = hub.headers(token, **{"ft-jeton-usager": jeton, "X-Relais-Details": "oui"})

    def detail(self, identifiant: str, *, details: bool = True) -> Any:
        """detailManquement; with Relais' additions (état, historique...) unless ``details`` is False."""
        headers = self.headers if details else {k: v for k, v in self.headers.items() if k != "X-Relais-Details"}
        return self.hub.client.get(DETAIL, params={"identifiantSanction": identifiant}, headers=headers)

    def evenement(self, identifiant: str, type_: str, *, jour: date | None = None, **fields: Any) -> Any:
        body = {
            "identifiantConsequenceSanction": identifiant,
            "evenement": {"typeEvenement": type_, "dateEvenement": (jour or self.hub.clock.today()).isoformat()},
            **fields,
        }
        return self.hub.client.post(EVENEMENT, json=body, headers=self.headers)

    def decision(self, **overrides: Any) -> Any:
        return self.hub.client.post(DECISION, json={**DECISION_BODY, **overrides}, headers=self.headers)

    def radiation(self, identifiant: str) -> Any:
        return self.hub.client.post(
            RADIATION, json={"identifiantConsequenceSanction": identifiant}, headers=self.headers
        )


def usager_of(session: Any, person: Person) -> Usager:
    return session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one()


def proposer(hub: Hub, payload: dict[str, Any], person: Person = GIRONDE) -> str:
    with hub.services.database.session() as session:
        c = domain.proposer_consequence(session, usager_of(session, person), dict(payload), now=hub.clock.now)
        session.commit()
        return c.id


def activites(hub: Hub, identifiant: str) -> list[tuple[str, bool, str]]:
    """(code, open?, organisation code) of every activity about the consequence, oldest first."""
    with hub.services.database.session() as session:
        rows = session.exec(
            select(Activite, Organisation)
            .join(Organisation, col(Organisation.id) == Activite.organisation_id)
            .where(Activite.sujet == f"consequence:{identifiant}")
            .order_by(col(Activite.date_creation), col(Activite.code_activite))
        ).all()
        return [(a.code_activite, a.closed_at is None, o.code) for a, o in rows]


def count(hub: Hub) -> int:
    with hub.services.database.session() as session:
        return len(session.exec(select(ConsequenceSanction)).all())


def ouvertes(hub: Hub, identifiant: str) -> list[str]:
    return [code for code, ouverte, _ in activites(hub, identifiant) if ouverte]


def snapshot(hub: Hub, identifiant: str) -> tuple[Any, ...]:
    with hub.services.database.session() as session:
        c = session.get(ConsequenceSanction, identifiant)
        assert c is not None
        state = (c.etat, c.version, c.type_consequence_validee, c.montant_valide, len(c.historique))
        radiation = c.radiation_demandee_at
    # SQLite's pool holds one connection: read the activities once the session is closed.
    return (*state, radiation, tuple(activites(hub, identifiant)))


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """A refusal by the sanctions rules. ``status`` is detailManquement's (a read); a write
    answers as FT's diagram: "200 - Demande traitée + Code sortie à traduire pour action"."""
    body: dict[str, Any] = response.json()
    if response.request.method == "POST":
        assert response.status_code == 200, response.text
        assert set(body) == {"codeSortie", "message"}
    else:
        assert response.status_code == status, response.text
        assert body["codeHttp"] == status
    assert body["codeSortie"] == code
    assert body["message"]
    return body


def assert_ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["codeSortie"] == "C001"
    return body


# detailManquement -------------------------------------------------------------------


class TestDetailManquement:
    def test_proposal_as_france_travail_made_it(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        response = Api(hub).detail(identifiant)
        assert response.status_code == 200
        body = response.json()
        assert body["typeConsequenceSanction"] == "SUSP_RSA"
        assert body["modaliteProposee"] == "P"
        assert body["montantPropose"] == 50
        assert body["dureeProposee"] == 2
        assert (body["natureManquement"], body["rangManquement"], body["dateManquement"]) == ("N65", "R1", "2026-01-15")
        assert body["identifiantConsequenceSanction"] == identifiant
        assert body["etatConsequenceSanction"] == "A_INSTRUIRE"
        assert body["codeActivite"] == "ACT366"
        assert body["evenementsAutorises"] == ["SAISIE_SANCTION", "REFUS_SAISIE_SANCTION"]
        assert body["origine"] == "FT"
        assert body["dateEcheance"] == (hub.clock.today() + timedelta(days=15)).isoformat()
        assert body["enRetard"] is False
        assert body["montantValide"] is None
        assert [h["typeEvenement"] for h in body["historique"]] == ["PROPOSITION_FT"]
        # The proposal put ACT366 on the list of the usager's CD, naming the consequence.
        with hub.services.database.session() as session:
            activite = session.exec(select(Activite).where(Activite.sujet == f"consequence:{identifiant}")).one()
            assert activite.code_activite == "ACT366"
            assert activite.code_famille == "GLI100"
            assert activite.date_echeance == hub.clock.today() + timedelta(days=15)
            assert activite.attributs[0] == {"nom": "identifiantConsequenceSanction", "valeur": identifiant}
            assert session.get(Organisation, activite.organisation_id).code == "CD33"  # type: ignore[union-attr]
        # France Travail's identifier is kept as given.
        proposer(hub, {**PROPOSITION_SUSPENSION, "identifiantConsequenceSanction": "FT-2026-000123"})
        assert Api(hub).detail("FT-2026-000123").json()["identifiantConsequenceSanction"] == "FT-2026-000123"
        # Another organisation attached to the usager may read it (it decides nothing).
        assert Api(hub, client_id="ft-naq").detail(identifiant).status_code == 200

    def test_without_opt_in_only_what_france_travail_names(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        body = assert_ft_shape("detail_manquement", Api(hub).detail(identifiant, details=False))
        assert (body["typeConsequenceSanction"], body["montantPropose"], body["natureManquement"]) == (
            "SUSP_RSA",
            50,
            "N65",
        )
        assert not {"etatConsequenceSanction", "historique", "evenementsAutorises", "enRetard"} & set(body)

    def test_unknown_or_other_usagers_consequence_is_404_c002(self, hub: Hub) -> None:
        api = Api(hub)
        body = assert_refused(api.detail("inconnu"), 404, "C002")
        assert body["codeErreur"] == "CONSEQUENCE_INCONNUE"
        assert_refused(api.evenement("inconnu", "SAISIE_SANCTION"), 404, "C002")
        assert_refused(api.radiation("inconnu"), 404, "C002")
        # A consequence of another usager is unknown through this usager's jeton.
        identifiant = proposer(hub, PROPOSITION_SUSPENSION, person=SEINE_SAINT_DENIS)
        assert_refused(api.detail(identifiant), 404, "C002")
        assert_refused(api.evenement(identifiant, "SAISIE_SANCTION"), 404, "C002")
        assert_refused(api.radiation(identifiant), 404, "C002")

    def test_overdue_after_15_days(self, hub: Hub) -> None:
        start = hub.clock.now
        try:
            self._overdue(hub)
        finally:
            hub.clock.now = start

    def _overdue(self, hub: Hub) -> None:
        en_cours = proposer(hub, PROPOSITION_SUSPENSION)
        decidee = proposer(hub, PROPOSITION_SUSPENSION)
        assert_ok(Api(hub).evenement(decidee, "REFUS_SAISIE_SANCTION"))
        hub.clock.now += timedelta(days=15)
        api = Api(hub)
        assert api.detail(en_cours).json()["enRetard"] is False  # the 15th day is still in time
        hub.clock.now += timedelta(days=1)
        api = Api(hub)
        assert api.detail(en_cours).json()["enRetard"] is True
        assert api.detail(decidee).json()["enRetard"] is False
        # Instruction does not restart the decision delay of the consequence.
        assert_ok(api.evenement(en_cours, "SAISIE_SANCTION"))
        assert api.detail(en_cours).json()["enRetard"] is True


# evenementSanctionRSA: sequences -----------------------------------------------------


class TestSequences:
    def test_suspension_instructed_validated_then_annulled(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        body = assert_ok(api.evenement(identifiant, "SAISIE_SANCTION", typeConsequenceSanctionValide="SUSP_RSA"))
        assert body == {
            "codeSortie": "C001",
            "message": "Traitement effectué",
            "identifiantConsequenceSanction": identifiant,
            "etatConsequenceSanction": "A_TRAITER",
        }
        assert activites(hub, identifiant) == [("ACT366", False, "CD33"), ("ACT367", True, "CD33")]

        assert_ok(api.evenement(identifiant, "VALID_SANCTION", **VALIDATION))
        assert ouvertes(hub, identifiant) == []
        detail = api.detail(identifiant).json()
        assert detail["etatConsequenceSanction"] == "VALIDEE"
        assert (detail["typeConsequenceSanctionValide"], detail["modaliteDecisionValidee"]) == ("SUSP_RSA", "M")
        assert (detail["montantValide"], detail["dureeValidee"]) == (120.5, 3)
        assert detail["codeActivite"] is None
        assert detail["evenementsAutorises"] == ["ANNULATION_SANCTION"]

        assert_ok(
            api.evenement(
                identifiant, "ANNULATION_SANCTION", typeConsequenceSanctionValide="SUSP_RSA", motifEvenement="Recours"
            )
        )
        detail = api.detail(identifiant).json()
        assert detail["etatConsequenceSanction"] == "ANNULEE"
        assert detail["motifEvenement"] == "Recours"
        assert detail["evenementsAutorises"] == []
        historique = detail["historique"]
        assert [h["typeEvenement"] for h in historique] == [
            "PROPOSITION_FT",
            "SAISIE_SANCTION",
            "VALID_SANCTION",
            "ANNULATION_SANCTION",
        ]
        assert {h["identifiantAgent"] for h in historique[1:]} == {"AGT-0042"}
        assert [h["etatConsequenceSanction"] for h in historique] == ["A_INSTRUIRE", "A_TRAITER", "VALIDEE", "ANNULEE"]
        assert all(h["dateEnregistrement"].startswith(hub.clock.now.date().isoformat()) for h in historique)
        assert len(activites(hub, identifiant)) == 2

    def test_refus_saisie_validates_the_proposal_as_is(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        assert assert_ok(api.evenement(identifiant, "REFUS_SAISIE_SANCTION"))["etatConsequenceSanction"] == "VALIDEE"
        detail = api.detail(identifiant).json()
        assert detail["typeConsequenceSanctionValide"] == "SUSP_RSA"
        assert (detail["modaliteDecisionValidee"], detail["montantValide"], detail["dureeValidee"]) == ("P", 50, 2)
        assert activites(hub, identifiant) == [("ACT366", False, "CD33")]

    def test_refus_sanction(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        assert_ok(api.evenement(identifiant, "SAISIE_SANCTION"))
        assert_ok(api.evenement(identifiant, "REFUS_SANCTION", motifEvenement="Situation régularisée"))
        detail = api.detail(identifiant).json()
        assert detail["etatConsequenceSanction"] == "REFUSEE"
        assert detail["typeConsequenceSanctionValide"] is None
        assert ouvertes(hub, identifiant) == []

    def test_suppression_is_decided_without_instruction(self, hub: Hub) -> None:
        api = Api(hub)
        for evenement in ("VALID_SANCTION", "REFUS_SANCTION"):
            identifiant = proposer(hub, PROPOSITION_SUPPRESSION)
            assert api.detail(identifiant).json()["etatConsequenceSanction"] == "A_TRAITER"
            assert ouvertes(hub, identifiant) == ["ACT370"]
            assert_refused(api.evenement(identifiant, "SAISIE_SANCTION"), 409, "C003")
            valid = evenement == "VALID_SANCTION"
            fields = {**VALIDATION, "typeConsequenceSanctionValide": "SUPP_RSA"} if valid else {}
            assert_ok(api.evenement(identifiant, evenement, **fields))
            assert activites(hub, identifiant) == [("ACT370", False, "CD33")]

    def test_levee_de_suspension(self, hub: Hub) -> None:
        api = Api(hub)
        for evenement, etat in (("VALID_LEVEE_SUSP", "VALIDEE"), ("REFUS_LEVEE_SUSP", "REFUSEE")):
            identifiant = proposer(hub, PROPOSITION_LEVEE)
            # FT's diagram and collection: a levée is to be processed at once (ACT369, no ACT368).
            assert api.detail(identifiant).json()["etatConsequenceSanction"] == "A_TRAITER"
            assert ouvertes(hub, identifiant) == ["ACT369"]
            assert_refused(api.evenement(identifiant, "SAISIE_SANCTION"), 409, "C003")
            assert_refused(api.evenement(identifiant, "VALID_SANCTION", **VALIDATION), 409, "C003")
            assert_ok(api.evenement(identifiant, evenement))
            assert api.detail(identifiant).json()["etatConsequenceSanction"] == etat
            assert ouvertes(hub, identifiant) == []
            # A levée is not a sanction: it cannot be annulled.
            response = api.evenement(
                identifiant, "ANNULATION_SANCTION", typeConsequenceSanctionValide="LEVEE_SUSP_RSA", motifEvenement="x"
            )
            assert_refused(response, 409, "C003")

    def test_every_event_out_of_sequence_is_refused_and_changes_nothing(self, hub: Hub) -> None:
        api = Api(hub)
        fields = {
            **VALIDATION,
            "motifEvenement": "Motif",
        }
        # One consequence in each reachable state.
        cases: dict[str, str] = {
            "SUSP A_INSTRUIRE": proposer(hub, PROPOSITION_SUSPENSION),
            "SUSP A_TRAITER": proposer(hub, PROPOSITION_SUSPENSION),
            "SUPP A_TRAITER": proposer(hub, PROPOSITION_SUPPRESSION),
            "LEVEE A_TRAITER": proposer(hub, PROPOSITION_LEVEE),
            "VALIDEE": proposer(hub, PROPOSITION_SUSPENSION),
            "REFUSEE": proposer(hub, PROPOSITION_SUSPENSION),
            "ANNULEE": proposer(hub, PROPOSITION_SUSPENSION),
        }
        assert_ok(api.evenement(cases["SUSP A_TRAITER"], "SAISIE_SANCTION"))
        assert_ok(api.evenement(cases["VALIDEE"], "REFUS_SAISIE_SANCTION"))
        assert_ok(api.evenement(cases["REFUSEE"], "SAISIE_SANCTION"))
        assert_ok(api.evenement(cases["REFUSEE"], "REFUS_SANCTION"))
        assert_ok(api.evenement(cases["ANNULEE"], "REFUS_SAISIE_SANCTION"))
        assert_ok(api.evenement(cases["ANNULEE"], "ANNULATION_SANCTION", **fields))
        allowed = {
            "SUSP A_INSTRUIRE": {"SAISIE_SANCTION", "REFUS_SAISIE_SANCTION"},
            "SUSP A_TRAITER": {"VALID_SANCTION", "REFUS_SANCTION"},
            "SUPP A_TRAITER": {"VALID_SANCTION", "REFUS_SANCTION"},
            "LEVEE A_TRAITER": {"VALID_LEVEE_SUSP", "REFUS_LEVEE_SUSP"},
            "VALIDEE": {"ANNULATION_SANCTION"},
            "REFUSEE": set(),
            "ANNULEE": set(),
        }
        refused = 0
        for case, identifiant in cases.items():
            assert set(api.detail(identifiant).json()["evenementsAutorises"]) == allowed[case], case
            for evenement in domain.TYPES_EVENEMENT:
                if evenement in allowed[case]:
                    continue
                before = snapshot(hub, identifiant)
                assert_refused(api.evenement(identifiant, evenement, **fields), 409, "C003")
                assert snapshot(hub, identifiant) == before, (case, evenement)
                refused += 1
        assert refused == 7 * 7 - 9


# evenementSanctionRSA: required fields and value rules ---------------------------------


class TestEventRules:
    def test_valid_sanction_requires_its_four_values(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUPPRESSION)
        api = Api(hub)
        before = snapshot(hub, identifiant)
        for missing in VALIDATION:
            fields = {k: v for k, v in VALIDATION.items() if k != missing}
            body = assert_refused(api.evenement(identifiant, "VALID_SANCTION", **fields), 400, "C004")
            assert missing in body["message"]
            assert snapshot(hub, identifiant) == before

    def test_annulation_requires_type_and_motif(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        assert_ok(api.evenement(identifiant, "REFUS_SAISIE_SANCTION"))
        for missing in ("typeConsequenceSanctionValide", "motifEvenement"):
            fields: dict[str, Any] = {"typeConsequenceSanctionValide": "SUSP_RSA", "motifEvenement": "Erreur"}
            fields[missing] = None
            body = assert_refused(api.evenement(identifiant, "ANNULATION_SANCTION", **fields), 400, "C004")
            assert missing in body["message"]
        assert_refused(
            api.evenement(
                identifiant, "ANNULATION_SANCTION", typeConsequenceSanctionValide="SUSP_RSA", motifEvenement=" "
            ),
            400,
            "C004",
        )
        assert api.detail(identifiant).json()["etatConsequenceSanction"] == "VALIDEE"

    def test_value_rules(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUPPRESSION)
        api = Api(hub)
        before = snapshot(hub, identifiant)
        for fields, field in (
            ({"modaliteDecisionValidee": "P", "montantValide": 29}, "montantValide"),
            ({"modaliteDecisionValidee": "P", "montantValide": 100.5}, "montantValide"),
            ({"modaliteDecisionValidee": "M", "montantValide": 0}, "montantValide"),
            ({"modaliteDecisionValidee": "M", "montantValide": -10}, "montantValide"),
            ({"dureeValidee": 0}, "dureeValidee"),
            ({"dureeValidee": 5}, "dureeValidee"),
            ({"typeConsequenceSanctionValide": "LEVEE_SUSP_RSA"}, "typeConsequenceSanctionValide"),
        ):
            response = api.evenement(identifiant, "VALID_SANCTION", **{**VALIDATION, **fields})
            body = assert_refused(response, 400, "C005")
            assert field in body["message"], fields
            assert snapshot(hub, identifiant) == before

    def test_bounds_are_inclusive(self, hub: Hub) -> None:
        api = Api(hub)
        for modalite, montant in (("P", 30), ("P", 100), ("M", 0.01), ("M", 900)):
            identifiant = proposer(hub, PROPOSITION_SUPPRESSION)
            fields = {**VALIDATION, "modaliteDecisionValidee": modalite, "montantValide": montant, "dureeValidee": 1}
            assert_ok(api.evenement(identifiant, "VALID_SANCTION", **fields))
            assert api.detail(identifiant).json()["montantValide"] == montant

    def test_dates_and_values_an_event_does_not_use(self, hub: Hub) -> None:
        api = Api(hub)
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        before = snapshot(hub, identifiant)
        demain = hub.clock.today() + timedelta(days=1)
        body = assert_refused(api.evenement(identifiant, "SAISIE_SANCTION", jour=demain), 400, "C005")
        assert "dateEvenement" in body["message"]
        body = {
            "identifiantConsequenceSanction": identifiant,
            "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": "2026-02-30"},
        }
        assert_refused(hub.client.post(EVENEMENT, json=body, headers=api.headers), 400, "C005")
        # Values are checked even when the event does not use them.
        assert_refused(api.evenement(identifiant, "SAISIE_SANCTION", dureeValidee=12), 400, "C005")
        assert snapshot(hub, identifiant) == before
        # An annulation names the validated type.
        assert_ok(api.evenement(identifiant, "REFUS_SAISIE_SANCTION"))
        response = api.evenement(
            identifiant, "ANNULATION_SANCTION", typeConsequenceSanctionValide="SUPP_RSA", motifEvenement="Erreur"
        )
        assert_refused(response, 400, "C005")
        assert api.detail(identifiant).json()["etatConsequenceSanction"] == "VALIDEE"

    def test_malformed_body_is_a_platform_400(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        body = {"identifiantConsequenceSanction": identifiant, "evenement": {"typeEvenement": "SAISIE_SANCTION"}}
        response = hub.client.post(EVENEMENT, json=body, headers=api.headers)
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        response = api.evenement(identifiant, "INCONNU")
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"

    def test_only_the_deciding_cd_decides(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        before = snapshot(hub, identifiant)
        # France Travail is attached to the usager but decides nothing.
        assert_refused(Api(hub, client_id="ft-naq").evenement(identifiant, "SAISIE_SANCTION"), 403, "C007")
        assert snapshot(hub, identifiant) == before
        identifiant = proposer(hub, PROPOSITION_SUSPENSION, person=RATTACHE_EXPLICITE)
        assert activites(hub, identifiant) == [("ACT366", True, "CD93")]
        assert_refused(Api(hub, RATTACHE_EXPLICITE).evenement(identifiant, "SAISIE_SANCTION"), 403, "C007")
        assert_ok(Api(hub, RATTACHE_EXPLICITE, client_id="cd93").evenement(identifiant, "SAISIE_SANCTION"))
        # Only a CD sends a decision of its own; only the deciding CD requests radiation.
        france_travail = Api(hub, client_id="ft-naq")
        assert_refused(france_travail.decision(), 403, "C007")
        identifiant = assert_ok(Api(hub).decision())["identifiantConsequenceSanction"]
        assert_refused(france_travail.radiation(identifiant), 403, "C007")


# decisionSanctionRSAPartenaire and demandeRadiation -------------------------------------


class TestDecisionEtRadiation:
    def test_partner_decision_is_created_validated(self, hub: Hub) -> None:
        api = Api(hub)
        body = assert_ok(api.decision())
        identifiant = body["identifiantConsequenceSanction"]
        assert body["etatConsequenceSanction"] == "VALIDEE"
        detail = api.detail(identifiant).json()
        assert detail["origine"] == "PARTENAIRE"
        assert detail["etatConsequenceSanction"] == "VALIDEE"
        assert detail["typeConsequenceSanction"] == "SUSP_RSA"
        assert (detail["modaliteDecisionValidee"], detail["montantValide"], detail["dureeValidee"]) == ("P", 50, 4)
        assert detail["dateNotificationDecisionSanction"] == "2026-01-20"
        assert (detail["natureManquement"], detail["rangManquement"]) == ("N65", "R2")
        assert detail["modaliteProposee"] is None
        assert detail["dateEcheance"] is None
        assert detail["historique"][0]["typeEvenement"] == "DECISION_PARTENAIRE"
        assert detail["historique"][0]["identifiantAgent"] == "AGT-0042"
        assert activites(hub, identifiant) == []
        with hub.services.database.session() as session:
            c = session.get(ConsequenceSanction, identifiant)
            assert c is not None
            assert session.get(Organisation, c.organisation_id).code == "CD33"  # type: ignore[union-attr]
        api = Api(hub)
        identifiant = assert_ok(api.decision(typeSanctionValide="SUPP_RSA"))["identifiantConsequenceSanction"]
        response = api.evenement(
            identifiant, "ANNULATION_SANCTION", typeConsequenceSanctionValide="SUPP_RSA", motifEvenement="Erreur"
        )
        assert assert_ok(response)["etatConsequenceSanction"] == "ANNULEE"

    def test_partner_decision_value_rules(self, hub: Hub) -> None:
        api = Api(hub)
        before = count(hub)
        for overrides, field in (
            ({"montantValide": 20}, "montantValide"),
            ({"modaliteDecisionValidee": "M", "montantValide": 0}, "montantValide"),
            ({"dureeValidee": 6}, "dureeValidee"),
            ({"dateNotificationDecisionSanction": "2999-01-01"}, "dateNotificationDecisionSanction"),
            ({"dateManquement": "2999-01-01"}, "dateManquement"),
            ({"natureManquement": "N 65"}, "natureManquement"),
            ({"libelleManquement": "ligne\nsuivante"}, "libelleManquement"),
        ):
            body = assert_refused(api.decision(**overrides), 400, "C005")
            assert field in body["message"], overrides
        assert count(hub) == before

    def test_partner_decision_missing_field_is_a_platform_400(self, hub: Hub) -> None:
        api = Api(hub)
        body = {k: v for k, v in DECISION_BODY.items() if k != "rangManquement"}
        response = hub.client.post(DECISION, json=body, headers=api.headers)
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert "rangManquement" in response.json()["message"]

    def test_radiation_once_on_a_validated_sanction(self, hub: Hub) -> None:
        api = Api(hub)
        identifiant = assert_ok(api.decision())["identifiantConsequenceSanction"]
        assert assert_ok(api.radiation(identifiant))["identifiantConsequenceSanction"] == identifiant
        detail = api.detail(identifiant).json()
        assert detail["dateDemandeRadiation"].startswith(hub.clock.now.date().isoformat())
        assert detail["historique"][-1]["typeEvenement"] == "DEMANDE_RADIATION"
        before = snapshot(hub, identifiant)
        assert_refused(api.radiation(identifiant), 409, "C008")
        assert snapshot(hub, identifiant) == before

    def test_radiation_after_a_validated_proposal(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        assert_refused(api.radiation(identifiant), 409, "C003")
        assert_ok(api.evenement(identifiant, "REFUS_SAISIE_SANCTION"))
        assert_ok(api.radiation(identifiant))

    def test_no_radiation_on_refused_annulled_or_levee(self, hub: Hub) -> None:
        api = Api(hub)
        refusee = proposer(hub, PROPOSITION_SUPPRESSION)
        assert_ok(api.evenement(refusee, "REFUS_SANCTION"))
        annulee = assert_ok(api.decision())["identifiantConsequenceSanction"]
        fields: dict[str, Any] = {"typeConsequenceSanctionValide": "SUSP_RSA", "motifEvenement": "Erreur"}
        assert_ok(api.evenement(annulee, "ANNULATION_SANCTION", **fields))
        levee = proposer(hub, PROPOSITION_LEVEE)
        assert_ok(api.evenement(levee, "VALID_LEVEE_SUSP"))
        for identifiant in (refusee, annulee, levee):
            assert_refused(api.radiation(identifiant), 409, "C003")


# Access: scopes, jeton, perimeter ------------------------------------------------------


class TestAccess:
    def test_decision_and_radiation_need_their_own_scopes(self, hub: Hub) -> None:
        # Without decisionSanctionPartenaire: 403 on the decision, the rest works.
        api = Api(hub, scope=f"{BASE_SCOPES} demandeRadiation")
        response = api.decision()
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        assert api.detail(identifiant).status_code == 200
        assert_ok(api.evenement(identifiant, "REFUS_SAISIE_SANCTION"))
        assert_ok(api.radiation(identifiant))
        # Without demandeRadiation, the rest still works but radiation is refused.
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub, scope=f"{BASE_SCOPES} decisionSanctionPartenaire")
        assert_ok(api.evenement(identifiant, "REFUS_SAISIE_SANCTION"))
        assert api.radiation(identifiant).status_code == 403
        assert snapshot(hub, identifiant)[5] is None  # radiation_demandee_at
        assert_ok(api.decision())

    def test_every_operation_needs_gestiondesmanquements(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub, scope="api_gestion-sanctions-rsav1 decisionSanctionPartenaire demandeRadiation")
        for response in (
            api.detail(identifiant),
            api.evenement(identifiant, "SAISIE_SANCTION"),
            api.decision(),
            api.radiation(identifiant),
        ):
            assert response.status_code == 403
            assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
        assert ouvertes(hub, identifiant) == ["ACT366"]

    def test_missing_or_bad_jeton_is_401(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        for jeton in (None, "abc.def"):
            headers = {k: v for k, v in api.headers.items() if k != "ft-jeton-usager"}
            if jeton:
                headers["ft-jeton-usager"] = jeton
            client = hub.client
            for response in (
                client.get(DETAIL, params={"identifiantSanction": identifiant}, headers=headers),
                client.post(
                    EVENEMENT,
                    json={
                        "identifiantConsequenceSanction": identifiant,
                        "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": "2026-01-01"},
                    },
                    headers=headers,
                ),
                client.post(DECISION, json=DECISION_BODY, headers=headers),
                client.post(RADIATION, json={"identifiantConsequenceSanction": identifiant}, headers=headers),
            ):
                assert response.status_code == 401, response.text
                assert response.json()["codeErreur"].startswith("JETON_USAGER_")
        assert ouvertes(hub, identifiant) == ["ACT366"]

    def test_agent_headers_required(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION)
        api = Api(hub)
        headers = {k: v for k, v in api.headers.items() if k != "pa-identifiant-agent"}
        response = hub.client.get(DETAIL, params={"identifiantSanction": identifiant}, headers=headers)
        assert response.status_code == 400
        assert "pa-identifiant-agent" in response.json()["message"]

    def test_detached_usager_is_403(self, hub: Hub) -> None:
        identifiant = proposer(hub, PROPOSITION_SUSPENSION, person=RATTACHE_EXPLICITE)
        api = Api(hub, RATTACHE_EXPLICITE)
        assert api.detail(identifiant).status_code == 200
        before = count(hub)
        with hub.services.database.session() as session:
            usager = usager_of(session, RATTACHE_EXPLICITE)
            cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
            assert cd33.id is not None
            lien = (usager.id, cd33.id)
            session.delete(session.get(UsagerOrganisation, lien))
            session.commit()
        try:
            for response in (api.detail(identifiant), api.decision(), api.radiation(identifiant)):
                assert response.status_code == 403
                assert response.json()["codeErreur"] == "USAGER_NON_RATTACHE"
            assert count(hub) == before
        finally:
            with hub.services.database.session() as session:
                session.add(UsagerOrganisation(usager_id=lien[0], organisation_id=lien[1]))
                session.commit()

    def test_refusals_never_echo_values(self, hub: Hub) -> None:
        api = Api(hub)
        secret = "SECRET-VALUE-123"
        for response in (
            api.detail(secret),
            api.evenement(secret, "SAISIE_SANCTION"),
            api.radiation(secret),
            api.decision(natureManquement=secret, montantValide=1),
        ):
            # A write refused by the rules is a 200 with its codeSortie (FT's diagram).
            assert response.status_code >= 400 or response.json()["codeSortie"] != "C001"
            assert secret not in response.text


# proposer_consequence (the producer feed's rule) ---------------------------------------


class TestProposition:
    def test_invalid_proposals_are_refused(self, hub: Hub) -> None:
        before = count(hub)
        proposer(hub, {**PROPOSITION_SUSPENSION, "identifiantConsequenceSanction": "FT-1"})
        with hub.services.database.session() as session:
            usager = usager_of(session, GIRONDE)
            for payload, code in (
                ({"typeConsequenceSanction": "RADIATION"}, "C005"),
                ({}, "C004"),
                ({**PROPOSITION_SUSPENSION, "montantPropose": 10}, "C005"),
                ({**PROPOSITION_SUSPENSION, "modaliteProposee": None}, "C004"),
                ({**PROPOSITION_SUSPENSION, "dureeProposee": 9}, "C005"),
                ({**PROPOSITION_SUSPENSION, "dateManquement": "15/01/2026"}, "C005"),
                ({**PROPOSITION_SUSPENSION, "identifiantConsequenceSanction": "bad id!"}, "C005"),
                ({**PROPOSITION_SUSPENSION, "identifiantConsequenceSanction": "FT-1"}, "C010"),
            ):
                with pytest.raises(Refused) as refused:
                    domain.proposer_consequence(session, usager, payload, now=hub.clock.now)
                assert refused.value.code == code, payload
            usager.adresses = []  # no département, so no CD to decide
            with pytest.raises(Refused) as refused:
                domain.proposer_consequence(session, usager, dict(PROPOSITION_SUSPENSION), now=hub.clock.now)
            assert refused.value.code == "C009"
            assert refused.value.kind is RefusalKind.INVALID
            session.rollback()
        # Only the first, valid proposal was written (with its activity).
        assert count(hub) == before + 1
        assert activites(hub, "FT-1") == [("ACT366", True, "CD33")]


# Conformance with a live jeton ---------------------------------------------------------


def test_generated_requests_with_a_live_jeton_conform(hub: Hub) -> None:
    """schemathesis with the sanctions scopes and a valid jeton, aimed at real consequences:
    every answer is documented, matches its schema, and is never a 5xx.

    (tests/api/test_conformance.py covers the spec with a token lacking these scopes, i.e. mostly 403s.)
    """
    api = Api(hub)
    identifiants = [proposer(hub, p) for p in (PROPOSITION_SUSPENSION, PROPOSITION_SUPPRESSION, PROPOSITION_LEVEE)]
    identifiants.append(assert_ok(api.decision())["identifiantConsequenceSanction"])
    schema = schemathesis.openapi.from_asgi(f"{BASE}/openapi.json", hub.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 4
    for operation in operations:
        strategy = st.tuples(operation.as_strategy(headers=api.headers), st.sampled_from([*identifiants, None]))

        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(pair=strategy)
        def check(pair: tuple[schemathesis.Case, str | None]) -> None:
            case, identifiant = pair
            if identifiant is not None:
                if isinstance(case.body, dict) and "identifiantConsequenceSanction" in case.body:
                    case.body["identifiantConsequenceSanction"] = identifiant
                if isinstance(case.query, dict) and "identifiantSanction" in case.query:
                    case.query["identifiantSanction"] = identifiant
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            assert response.status_code in (200, 400, 403, 404, 409), response.text
            if response.status_code != 200 or case.operation.path != "/detailManquement":
                assert "codeSortie" in response.json() or response.json().get("codeErreur") == "REQUETE_INVALIDE"

        check()
