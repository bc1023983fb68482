"""Orientation usager v1: read, compute, decide, force; side effects seen through the activités API."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import delete, update
from sqlmodel import col, select

from audit.models import AuditEvent
from parcours import orientation as orientation_domain
from parcours.tables import Activite, ContratEngagement, Orientation, Usager, UsagerOrganisation
from relais.core.tables import Organisation
from relais.demo.orientation_criteria import CRITERES_COMPLETS as CRITERES_DE_BASE
from tests.support.hub import Hub
from tests.support.people import GIRONDE, RATTACHE_EXPLICITE, SEINE_SAINT_DENIS, Person
from tests.support.scopes import ACTIVITES_V2_SCOPES, ORIENTATION_SCOPES, RECHERCHE_SCOPES, STATUT_SCOPES

BASE = "/partenaire/orientationusager/v1"
LECTURE = f"{BASE}/lectureOrientation"
CALCUL = f"{BASE}/calculOrientation"
DECISION = f"{BASE}/decisionOrientation"
FORCEE = f"{BASE}/orientation"
ACTIVITES_V2 = "/partenaire/activites-operationnelles/v2/activites/chercher"

# Complete criteria with no barrier: the default rule (PED / FT).
CRITERES_COMPLETS: dict[str, Any] = {
    **CRITERES_DE_BASE,
    "adresse": {"code_commune": "33063", "libelle_commune": "BORDEAUX", "code_postal": "33000"},
    "type_emploi": "AUTRE",
}
ACCEPTEE = {"etat_decision": "ACCEPTEE", "agent_decision": "AGT-0042"}


# One app and database for the whole module (building one costs seconds): each test starts
# from the imported dataset again, with the parcours tables emptied and the clock reset.


@pytest.fixture(scope="module", name="shared_hub")
def shared_hub_fixture(module_hub: Hub) -> Hub:
    module_hub.base_time = module_hub.clock.now  # type: ignore[attr-defined]
    module_hub.cache = {}  # type: ignore[attr-defined]
    return module_hub


@pytest.fixture(name="hub")
def hub_fixture(shared_hub: Hub) -> Hub:
    reset(shared_hub)
    return shared_hub


def reset(hub: Hub) -> None:
    base: datetime = hub.base_time  # type: ignore[attr-defined]
    hub.clock.now = base
    hub.services.settings.orientation_rules_file = None
    with hub.services.database.transaction() as session:
        for table in (Activite, ContratEngagement, Orientation):
            session.execute(delete(table))
        session.execute(update(Organisation).values(code_aurore=None, code_safir=None))
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == RATTACHE_EXPLICITE.numero)).one()
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        assert cd33.id is not None
        if session.get(UsagerOrganisation, (usager.id, cd33.id)) is None:
            session.add(UsagerOrganisation(usager_id=usager.id, organisation_id=cd33.id))


def _cached(hub: Hub, key: tuple[str, ...], make: Any) -> str:
    """Tokens and jetons are reused for ten minutes of the hub's clock (each costs a call)."""
    cache: dict[tuple[str, ...], tuple[datetime, str]] = hub.cache  # type: ignore[attr-defined]
    hit = cache.get(key)
    if hit is not None and timedelta(0) <= hub.clock.now - hit[0] < timedelta(minutes=10):
        return hit[1]
    value = str(make())
    cache[key] = (hub.clock.now, value)
    return value


def token(hub: Hub, client: str = "cd33", scope: str = ORIENTATION_SCOPES) -> str:
    return _cached(hub, ("token", client, scope), lambda: hub.token(client, scope))


def jeton(hub: Hub, person: Person, client: str = "cd33") -> str:
    def make() -> str:
        response = hub.client.post(
            "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail",
            json={"numeroFranceTravail": person.numero},
            headers=hub.headers(token(hub, client, RECHERCHE_SCOPES)),
        )
        assert response.json()["codeRetour"] == "S001", response.text
        return str(response.json()["jetonUsager"])

    return _cached(hub, ("jeton", client, person.numero), make)


def call(
    hub: Hub,
    method: str,
    url: str,
    person: Person,
    *,
    body: dict[str, Any] | None = None,
    client: str = "cd33",
    scope: str = ORIENTATION_SCOPES,
    params: dict[str, str] | None = None,
    details: bool = False,
) -> httpx.Response:
    """``details``: opt in to Relais' explanations (``X-Relais-Details: oui``)."""
    extra = {"ft-jeton-usager": jeton(hub, person, client)}
    if details:
        extra["X-Relais-Details"] = "oui"
    headers = hub.headers(token(hub, client, scope), **extra)
    return hub.client.request(method, url, headers=headers, json=body, params=params)


def activites(hub: Hub, client: str = "cd33", **params: str) -> list[dict[str, Any]]:
    response = hub.client.get(ACTIVITES_V2, headers=hub.headers(token(hub, client, ACTIVITES_V2_SCOPES)), params=params)
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    return list(response.json()["activites"])


def of(person: Person, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["usager"]["identifiant"] == person.numero]


def usager_id(hub: Hub, person: Person) -> str:
    with hub.services.database.session() as session:
        return session.exec(select(Usager.id).where(Usager.numero_france_travail == person.numero)).one()


def preconiser(hub: Hub, person: Person, **payload: Any) -> None:
    """France Travail's preconisation, as the producer feed records it."""
    with hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one()
        orientation_domain.preconiser(
            session,
            usager,
            {"parcours": "PSO", "organisme": "CD", "origine": "INSCRIPTION_AUTO_CAF", **payload},
            now=hub.clock.now,
            agent="FT",
        )


def lecture(hub: Hub, person: Person, etat: str | None = None) -> list[dict[str, Any]]:
    response = call(hub, "GET", LECTURE, person, params={"etatOrientation": etat} if etat else None)
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    return list(response.json())


def last_audit_reason(hub: Hub) -> str | None:
    with hub.services.database.session() as session:
        return session.exec(select(AuditEvent.reason).order_by(col(AuditEvent.seq).desc())).first()


class TestLecture:
    def test_204_when_no_orientation(self, hub: Hub) -> None:
        response = call(hub, "GET", LECTURE, GIRONDE)
        assert response.status_code == 204
        assert response.content == b""

    def test_array_of_snake_case_orientations_most_recent_first(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        hub.clock.now += timedelta(minutes=1)
        assert call(hub, "POST", FORCEE, GIRONDE, body={"parcours": "PED", "organisme": "FT"}).status_code == 201
        items = lecture(hub, GIRONDE)
        assert [item["etat"] for item in items] == ["OUVERT", "CLOTURE"]
        assert set(items[0]) >= {
            "parcours",
            "organisme",
            "organisme_decision",
            "structure",
            "structure_decision",
            "statut",
            "etat",
            "agent_creation",
            "agent_derniere_modification",
            "date_entree_parcours",
            "date_sortie_parcours",
            "motif_sortie_parcours",
            "origine",
            "date_creation",
            "date_modification",
            "criteres_orientation",
            "decision",
        }

    def test_filter_by_etat(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        assert [item["etat"] for item in lecture(hub, GIRONDE, "EN_ATTENTE")] == ["EN_ATTENTE"]
        assert call(hub, "GET", LECTURE, GIRONDE, params={"etatOrientation": "OUVERT"}).status_code == 204

    def test_unknown_etat_is_400(self, hub: Hub) -> None:
        response = call(hub, "GET", LECTURE, GIRONDE, params={"etatOrientation": "OUVERTE"})
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert "OUVERTE" not in response.json()["message"]


class TestCalcul:
    def test_computes_and_explains_then_pending_with_act382(self, hub: Hub) -> None:
        criteres = {**CRITERES_COMPLETS, "contrainte_mobilite": "AUCUN_MOYEN_DE_TRANSPORT"}
        response = call(hub, "POST", CALCUL, GIRONDE, body=criteres, details=True)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["parcours"], body["organisme"]) == ("PSO", "CD")
        assert body["structure"]["libelle_structure"] == "Département 33"
        assert (body["etat"], body["statut"]) == ("EN_ATTENTE", "PRECONISE")
        assert body["justification"][0]["regle"] == "freins_peripheriques"
        assert body["justification"][0]["criteres"] == ["contrainte_mobilite"]
        assert body["criteres_orientation"]["contrainte_mobilite"] == "AUCUN_MOYEN_DE_TRANSPORT"
        assert body["agent_derniere_modification"] == "AGT-0042"
        act382 = of(GIRONDE, activites(hub, codeActivite="ACT382"))
        assert len(act382) == 1
        assert act382[0]["usager"] == {"identifiant": GIRONDE.numero, "typeIdentifiant": "numeroFranceTravail"}
        assert [item["etat"] for item in lecture(hub, GIRONDE)] == ["EN_ATTENTE"]

    def test_criteria_given_iteratively(self, hub: Hub) -> None:
        first = {key: CRITERES_COMPLETS[key] for key in ("brsa", "date_naissance", "adresse")}
        response = call(hub, "POST", CALCUL, GIRONDE, body=first, details=True)
        assert response.status_code == 200
        body = response.json()
        assert (body["parcours"], body["organisme"], body["structure"]) == ("IND", "IND", None)
        assert body["justification"][0]["regle"] == "criteres_manquants"
        assert "capacite_a_travailler" in body["justification"][0]["criteres"]
        assert "brsa" not in body["justification"][0]["criteres"]
        rest = {key: value for key, value in CRITERES_COMPLETS.items() if key not in first}
        response = call(hub, "POST", CALCUL, GIRONDE, body={**rest, "capacite_a_travailler": False}, details=True)
        body = response.json()
        assert (body["parcours"], body["organisme"]) == ("PSP", "CD")
        assert body["justification"][0]["regle"] == "incapacite_travail"
        assert body["criteres_orientation"]["date_naissance"] == "1985-07-14"
        # Still one pending orientation and one ACT382.
        assert len(lecture(hub, GIRONDE)) == 1
        assert len(of(GIRONDE, activites(hub, codeActivite="ACT382"))) == 1

    def test_default_rule_gives_france_travail(self, hub: Hub) -> None:
        body = call(hub, "POST", CALCUL, GIRONDE, body=CRITERES_COMPLETS, details=True).json()
        assert (body["parcours"], body["organisme"]) == ("PED", "FT")
        assert body["structure"]["libelle_structure"] == "France Travail Nouvelle-Aquitaine"
        assert body["justification"][0]["regle"] == "pret_a_l_emploi"

    def test_young_usager_goes_to_mission_locale_without_structure(self, hub: Hub) -> None:
        young = (hub.clock.today() - timedelta(days=365 * 20)).isoformat()
        body = call(
            hub, "POST", CALCUL, GIRONDE, body={**CRITERES_COMPLETS, "date_naissance": young}, details=True
        ).json()
        assert (body["parcours"], body["organisme"], body["structure"]) == ("PED", "ML", None)
        assert body["justification"][-1]["regle"] == "structure"

    def test_updates_a_preconisation_and_keeps_its_act382(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE, parcours="IND", organisme="IND")
        before = of(GIRONDE, activites(hub, codeActivite="ACT382"))
        body = call(hub, "POST", CALCUL, GIRONDE, body=CRITERES_COMPLETS).json()
        assert body["origine"] == "INSCRIPTION_AUTO_CAF"
        assert of(GIRONDE, activites(hub, codeActivite="ACT382")) == before

    def test_departement_rule_file(self, hub: Hub, tmp_path: Path) -> None:
        table = {
            "criteres_requis": ["brsa"],
            "regles": [],
            "defaut": {"id": "tout_social", "libelle": "Tous en parcours social", "parcours": "PSP", "organisme": "CD"},
        }
        path = tmp_path / "regles.json"
        path.write_text(json.dumps(table))
        hub.services.settings.orientation_rules_file = path
        body = call(hub, "POST", CALCUL, GIRONDE, body={"brsa": True}, details=True).json()
        assert (body["parcours"], body["organisme"]) == ("PSP", "CD")
        assert body["justification"][0]["regle"] == "tout_social"

    @pytest.mark.parametrize(
        "body",
        [
            {"situation_professionnelle": "jamais"},
            {"brsa": "oui"},
            {"adresse": {"code_postal": "3300"}},
            {"date_naissance": "14/07/1985"},
        ],
    )
    def test_bad_criteria_are_400_and_change_nothing(self, hub: Hub, body: dict[str, Any]) -> None:
        response = call(hub, "POST", CALCUL, GIRONDE, body=body)
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert lecture(hub, GIRONDE) == []
        # The message names the field, never echoes its value.
        for value in body.values():
            if isinstance(value, str):
                assert value not in response.json()["message"]


class TestFranceTravailShape:
    """What France Travail's typed demo client parses (FAIL_ON_UNKNOWN_PROPERTIES, Instant)."""

    def test_calcul_without_opt_in_has_no_relais_additions_and_ft_dates(self, hub: Hub) -> None:
        hub.clock.now = hub.clock.now.replace(microsecond=123456)
        body = call(hub, "POST", CALCUL, GIRONDE, body=CRITERES_COMPLETS).json()
        assert "justification" not in body
        # InstantWithoutZDeserializer: ISO local date-time, no fraction, no offset.
        pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"
        for value in (
            body["date_creation"],
            body["date_modification"],
            body["criteres_orientation"]["date_saisie_donnees"],
        ):
            assert re.match(pattern, value), value

    def test_unknown_request_fields_are_accepted_and_ignored(self, hub: Hub) -> None:
        criteres = {**CRITERES_COMPLETS, "critere_inconnu": True, "adresse": {**CRITERES_COMPLETS["adresse"], "x": 1}}
        response = call(hub, "POST", CALCUL, GIRONDE, body=criteres)
        assert response.status_code == 200, response.text
        assert "critere_inconnu" not in response.json()["criteres_orientation"]
        assert "x" not in response.json()["criteres_orientation"]["adresse"]
        response = call(hub, "POST", DECISION, GIRONDE, body={**ACCEPTEE, "champ": 1})
        assert response.status_code == 201, response.text

    def test_france_travail_refusal_example_is_201(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        # The collection's "refuser la préco FT": the CD decides and proposes France Travail.
        refus = {
            "etat_decision": "REFUSEE",
            "date_decision": hub.clock.today().isoformat(),
            "organisme_decision": "CD",
            "agent_decision": "TEST_POSTMAN",
            "motif_refus": "APPRECIATION_DIFFERENTE",
            "parcours": "PSO",
            "organisme": "FT",
        }
        response = call(hub, "POST", DECISION, GIRONDE, body=refus)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["parcours"], body["organisme"], body["organisme_decision"]) == ("PSO", "FT", "CD")
        assert "parcours_preconise" not in body["decision"]
        # France Travail, the counter-proposal, takes the first appointment.
        assert len(of(GIRONDE, activites(hub, "ft-naq", codeActivite="ACT380"))) == 1
        assert of(GIRONDE, activites(hub, codeActivite="ACT380")) == []


class TestDecision:
    def test_accept_opens_the_orientation_and_moves_the_activities(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        assert len(of(GIRONDE, activites(hub, codeActivite="ACT382"))) == 1
        response = call(hub, "POST", DECISION, GIRONDE, body={**ACCEPTEE, "date_decision": "2026-01-15"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["etat"], body["statut"]) == ("OUVERT", "DECIDE")
        assert (body["parcours"], body["organisme"], body["organisme_decision"]) == ("PSO", "CD", "CD")
        assert body["date_entree_parcours"] == "2026-01-15"
        assert body["decision"]["etat_decision"] == "ACCEPTEE"
        assert body["decision"]["agent_decision"] == "AGT-0042"
        assert of(GIRONDE, activites(hub, codeActivite="ACT382")) == []
        act380 = of(GIRONDE, activites(hub, codeActivite="ACT380"))
        assert len(act380) == 1
        assert act380[0]["attributsSpecifiques"] == [{"nom": "motif", "valeur": "ACC"}]
        assert [item["etat"] for item in lecture(hub, GIRONDE, "OUVERT")] == ["OUVERT"]

    def test_second_decision_is_409_and_changes_nothing(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201
        before = lecture(hub, GIRONDE)
        refus = {"etat_decision": "REFUSEE", "motif_refus": "APPRECIATION_DIFFERENTE", "parcours": "PED"}
        response = call(hub, "POST", DECISION, GIRONDE, body={**refus, "organisme": "FT"})
        assert last_audit_reason(hub) == "conflict:ORIENTATION_NON_EN_ATTENTE"
        assert response.status_code == 409
        assert response.json() == {
            "codeHttp": 409,
            "codeErreur": "ORIENTATION_NON_EN_ATTENTE",
            "message": "Aucune orientation en attente de décision : l'orientation de l'usager est déjà décidée",
        }
        assert lecture(hub, GIRONDE) == before
        assert len(of(GIRONDE, activites(hub, codeActivite="ACT380"))) == 1

    def test_no_orientation_is_404(self, hub: Hub) -> None:
        response = call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE)
        assert response.status_code == 404
        assert response.json()["codeErreur"] == "AUCUNE_ORIENTATION_EN_ATTENTE"

    def test_draft_is_not_decidable(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE, etat="BROUILLON")
        assert of(GIRONDE, activites(hub, codeActivite="ACT382")) == []
        response = call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE)
        assert response.status_code == 409
        assert response.json()["codeErreur"] == "ORIENTATION_NON_EN_ATTENTE"
        # calculOrientation completes the draft: it is then pending, with its ACT382.
        assert call(hub, "POST", CALCUL, GIRONDE, body=CRITERES_COMPLETS).json()["etat"] == "EN_ATTENTE"
        assert len(of(GIRONDE, activites(hub, codeActivite="ACT382"))) == 1
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201

    def test_indeterminate_preconisation_cannot_be_accepted(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE, parcours="IND", organisme="IND")
        response = call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE)
        assert response.status_code == 409
        assert response.json()["codeErreur"] == "ORIENTATION_INDETERMINEE"

    def test_sip_flow_ind_then_calcul_then_decision(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE, parcours="IND", organisme="IND")
        assert call(hub, "POST", CALCUL, GIRONDE, body=CRITERES_COMPLETS).status_code == 200
        body = call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).json()
        assert (body["parcours"], body["organisme_decision"], body["etat"]) == ("PED", "FT", "OUVERT")
        # France Travail accompanies: its list shows ACT380, the département's does not.
        assert len(of(GIRONDE, activites(hub, "ft-naq", codeActivite="ACT380"))) == 1
        assert of(GIRONDE, activites(hub, codeActivite="ACT380")) == []

    def test_refusal_takes_the_counter_proposal(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        refus = {
            "etat_decision": "REFUSEE",
            "motif_refus": "APPRECIATION_DIFFERENTE",
            "commentaire_refus": "Projet professionnel solide",
            "parcours": "PED",
            "organisme": "FT",
        }
        response = call(hub, "POST", DECISION, GIRONDE, body=refus, details=True)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["parcours"], body["organisme"], body["organisme_decision"]) == ("PED", "FT", "FT")
        assert body["decision"]["etat_decision"] == "REFUSEE"
        assert body["decision"]["motif_refus"] == "APPRECIATION_DIFFERENTE"
        assert (body["decision"]["parcours_preconise"], body["decision"]["organisme_preconise"]) == ("PSO", "CD")
        assert len(of(GIRONDE, activites(hub, "ft-naq", codeActivite="ACT380"))) == 1

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"etat_decision": "REFUSEE", "parcours": "PED", "organisme": "FT"}, "CONTRE_PROPOSITION_INCOMPLETE"),
            ({"etat_decision": "REFUSEE", "motif_refus": "DECLARATION_INEXACTE"}, "CONTRE_PROPOSITION_INCOMPLETE"),
            ({"etat_decision": "ACCEPTEE", "motif_refus": "DECLARATION_INEXACTE"}, "DECISION_INCOHERENTE"),
            ({"etat_decision": "ACCEPTEE", "date_decision": "2999-01-01"}, "DATE_DECISION_FUTURE"),
            ({"etat_decision": "VALIDEE"}, "REQUETE_INVALIDE"),
            (
                {"etat_decision": "REFUSEE", "motif_refus": "X", "parcours": "IND", "organisme": "FT"},
                "REQUETE_INVALIDE",
            ),
            ({"date_decision": "2026-01-01"}, "REQUETE_INVALIDE"),
        ],
    )
    def test_bad_decisions_are_400_and_change_nothing(self, hub: Hub, body: dict[str, Any], code: str) -> None:
        preconiser(hub, GIRONDE)
        response = call(hub, "POST", DECISION, GIRONDE, body=body)
        assert response.status_code == 400, response.text
        assert response.json()["codeErreur"] == code
        assert [item["etat"] for item in lecture(hub, GIRONDE)] == ["EN_ATTENTE"]
        assert len(of(GIRONDE, activites(hub, codeActivite="ACT382"))) == 1

    def test_new_decision_closes_the_previous_open_orientation(self, hub: Hub) -> None:
        preconiser(hub, GIRONDE)
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201
        hub.clock.now += timedelta(days=40)
        preconiser(hub, GIRONDE, parcours="PED", organisme="FT")
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201
        nouvelle, ancienne = lecture(hub, GIRONDE)
        assert (nouvelle["etat"], nouvelle["organisme_decision"]) == ("OUVERT", "FT")
        assert ancienne["etat"] == "CLOTURE"
        assert ancienne["date_sortie_parcours"] == hub.clock.today().isoformat()
        assert ancienne["motif_sortie_parcours"] == "REORIENTATION"
        # The first appointment to take is now France Travail's only.
        assert of(GIRONDE, activites(hub, codeActivite="ACT380")) == []
        assert len(of(GIRONDE, activites(hub, "ft-naq", codeActivite="ACT380"))) == 1

    def test_decision_returns_the_contrat_to_a_signer(self, hub: Hub) -> None:
        with hub.services.database.transaction() as session:
            session.add(ContratEngagement(usager_id=usager_id(hub, GIRONDE), etat="SIGNE", organisme="CD"))
        preconiser(hub, GIRONDE)
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201
        with hub.services.database.session() as session:
            contrat = session.exec(select(ContratEngagement)).one()
        assert contrat.etat == "A_SIGNER"


class TestOrientationForcee:
    def test_forced_orientation_replaces_pending_and_open(self, hub: Hub) -> None:
        with hub.services.database.transaction() as session:
            cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
            cd33.code_aurore, cd33.code_safir = "NAQ0405", "33014"
            session.add(cd33)
        preconiser(hub, GIRONDE)
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201
        preconiser(hub, GIRONDE, parcours="PED", organisme="FT")
        body = {
            "organisme": "CD",
            "origine": "INSCRIPTION_VOLONTAIRE",
            "parcours": "PSP",
            "structure": {"code_aurore": "NAQ0405", "code_safir": "33014"},
            "structure_decision": {"code_aurore": "NAQ0405", "code_safir": "33014", "libelle_structure": "CD 33"},
        }
        response = call(hub, "POST", FORCEE, GIRONDE, body=body)
        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["etat"], created["statut"], created["parcours"]) == ("OUVERT", "DECIDE", "PSP")
        assert created["structure_decision"]["code_aurore"] == "NAQ0405"
        assert created["date_entree_parcours"] == hub.clock.today().isoformat()
        etats = [item["etat"] for item in lecture(hub, GIRONDE)]
        assert etats.count("OUVERT") == 1
        assert "EN_ATTENTE" not in etats
        assert of(GIRONDE, activites(hub, codeActivite="ACT382")) == []
        assert len(of(GIRONDE, activites(hub, codeActivite="ACT380"))) == 1

    def test_webrsa_minimal_body(self, hub: Hub) -> None:
        response = call(
            hub,
            "POST",
            FORCEE,
            GIRONDE,
            body={"origine": "INSCRIPTION_VOLONTAIRE", "parcours": "PED", "organisme": "CD"},
        )
        assert response.status_code == 201
        assert response.json()["organisme_decision"] == "CD"

    def test_structure_decision_picks_the_accompanying_organisation(self, hub: Hub) -> None:
        # CD93's structure accompanies a Gironde usager: CD93 gets ACT380 and reaches the usager.
        with hub.services.database.transaction() as session:
            cd93 = session.exec(select(Organisation).where(Organisation.code == "CD93")).one()
            cd93.code_aurore = "IDF0093"
            session.add(cd93)
        body = {"parcours": "PSO", "organisme": "CD", "structure_decision": {"code_aurore": "IDF0093"}}
        assert call(hub, "POST", FORCEE, GIRONDE, body=body).status_code == 201
        assert len(of(GIRONDE, activites(hub, "cd93", codeActivite="ACT380"))) == 1
        assert of(GIRONDE, activites(hub, codeActivite="ACT380")) == []

    def test_no_organisation_no_act380(self, hub: Hub) -> None:
        # No France Travail organisation covers Seine-Saint-Denis in this dataset.
        body = {"parcours": "PED", "organisme": "FT"}
        assert call(hub, "POST", FORCEE, SEINE_SAINT_DENIS, body=body, client="cd93").status_code == 201
        assert of(SEINE_SAINT_DENIS, activites(hub, "cd93", codeActivite="ACT380")) == []
        assert of(SEINE_SAINT_DENIS, activites(hub, "ft-naq", codeActivite="ACT380")) == []

    @pytest.mark.parametrize(
        "body",
        [
            {"parcours": "PED"},
            {"parcours": "IND", "organisme": "CD"},
            {"parcours": "PED", "organisme": "XX"},
            {"parcours": "PED", "organisme": "CD", "structure": {"code_safir": "330"}},
            {"parcours": "PED", "organisme": "CD", "origine": "volontaire"},
        ],
    )
    def test_bad_bodies_are_400(self, hub: Hub, body: dict[str, Any]) -> None:
        response = call(hub, "POST", FORCEE, GIRONDE, body=body)
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert lecture(hub, GIRONDE) == []


OPERATIONS = [
    ("GET", LECTURE, None),
    ("POST", CALCUL, CRITERES_COMPLETS),
    ("POST", DECISION, ACCEPTEE),
    ("POST", FORCEE, {"parcours": "PED", "organisme": "CD"}),
]


@pytest.mark.parametrize(("method", "url", "body"), OPERATIONS)
class TestRefusals:
    def test_scopes_are_403(self, hub: Hub, method: str, url: str, body: dict[str, Any] | None) -> None:
        response = call(hub, method, url, GIRONDE, body=body, scope=STATUT_SCOPES)
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"

    def test_missing_jeton_is_401(self, hub: Hub, method: str, url: str, body: dict[str, Any] | None) -> None:
        headers = hub.headers(token(hub))
        response = hub.client.request(method, url, headers=headers, json=body)
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_ABSENT"

    def test_bad_jeton_is_401(self, hub: Hub, method: str, url: str, body: dict[str, Any] | None) -> None:
        headers = hub.headers(token(hub), **{"ft-jeton-usager": "abc.def"})
        response = hub.client.request(method, url, headers=headers, json=body)
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_INVALIDE"

    def test_detached_usager_is_403(self, hub: Hub, method: str, url: str, body: dict[str, Any] | None) -> None:
        live = jeton(hub, RATTACHE_EXPLICITE)
        with hub.services.database.transaction() as session:
            usager = session.get(Usager, usager_id(hub, RATTACHE_EXPLICITE))
            assert usager is not None
            cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
            session.delete(session.get(UsagerOrganisation, (usager.id, cd33.id)))
        headers = hub.headers(token(hub), **{"ft-jeton-usager": live})
        response = hub.client.request(method, url, headers=headers, json=body)
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "USAGER_NON_RATTACHE"

    def test_agent_headers_required(self, hub: Hub, method: str, url: str, body: dict[str, Any] | None) -> None:
        headers = hub.headers(token(hub), **{"ft-jeton-usager": jeton(hub, GIRONDE)})
        del headers["pa-nom-agent"]
        response = hub.client.request(method, url, headers=headers, json=body)
        assert response.status_code == 400
        assert "pa-nom-agent" in response.json()["message"]


@pytest.mark.parametrize("seed_state", ["none", "pending", "open"])
def test_conformance_with_full_rights(hub: Hub, seed_state: str) -> None:
    """schemathesis against Orientation usager with the right scopes and a live jeton.

    (tests/api/test_conformance.py covers every spec with the foundation's scopes: mostly 403s here.)
    Every answer, whatever the generated body, must be documented and never a 5xx.
    """
    if seed_state != "none":
        preconiser(hub, GIRONDE)
    if seed_state == "open":
        assert call(hub, "POST", DECISION, GIRONDE, body=ACCEPTEE).status_code == 201
    headers = {"Authorization": f"Bearer {token(hub)}", "ft-jeton-usager": jeton(hub, GIRONDE)}
    schema = schemathesis.openapi.from_asgi(f"{BASE}/openapi.json", hub.client.app)
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]

        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
