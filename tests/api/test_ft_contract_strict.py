"""What a strictly typed client of France Travail sees: every partner answer in FT's own shape.

The schemas under ``ft_schemas/`` re-express FT's published classes (the Java demo client of
``France-Travail/si_plateforme`` with Jackson's defaults: unknown properties fail, ``Instant`` /
``LocalDate`` / ``InstantWithoutZDeserializer`` formats) and FT's one public OpenAPI
(Rechercher usager v2): no additional properties, FT's date formats as patterns. Each is
validated on real answers of a département walking the parcours. APIs with no public FT
class (Statut usager, Rendez-vous partenaire, Contrat d'engagement, detailManquement) are
checked by the app's own response validation against ``specs/``.
"""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from parcours import orientation as orientation_domain
from parcours import sanctions as sanctions_domain
from parcours.tables import Usager
from tests.support.ft_schemas import assert_ft_shape, validator
from tests.support.hub import Hub
from tests.support.people import GIRONDE, Person
from tests.support.scopes import (
    ACTIVITES_V1_SCOPES,
    ACTIVITES_V2_SCOPES,
    INFOS,
    ORIENTATION_SCOPES,
    RECHERCHE,
    RECHERCHE_SCOPES,
    SANCTIONS_SCOPES,
)

ORIENTATION = "/partenaire/orientationusager/v1"
ACTIVITES_V1 = "/partenaire/activites-operationnelles/v1/activites/chercher"
ACTIVITES_V2 = "/partenaire/activites-operationnelles/v2/activites/chercher"
SANCTIONS = "/partenaire/gestion-sanctions-rsa/v1"
CONTRAT = "/partenaire/contrat-engagement/v1"


def token(hub: Hub, *scopes: str) -> str:
    return hub.token("cd33", " ".join(scopes))


def jeton(hub: Hub, access: str, person: Person = GIRONDE) -> str:
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": person.numero},
        headers=hub.headers(access),
    )
    return str(assert_ft_shape("resultat_recherche", response)["jetonUsager"])


def preconiser(hub: Hub, person: Person = GIRONDE) -> None:
    with hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one()
        orientation_domain.preconiser(
            session,
            usager,
            {"parcours": "PSO", "organisme": "CD", "origine": "INSCRIPTION_AUTO_CAF"},
            now=hub.clock.now,
            agent="FT",
        )


def test_schemas_refuse_what_ft_client_refuses() -> None:
    """The schemas can fail: a Relais addition or a date with an offset is refused."""
    orientation = {
        "parcours": "PSO",
        "organisme": "CD",
        "statut": "DECIDE",
        "etat": "OUVERT",
        "date_creation": "2026-01-15T09:30:00",
        "date_modification": "2026-01-15T09:30:00",
    }
    assert validator("orientation").is_valid(orientation)
    assert not validator("orientation").is_valid({**orientation, "justification": []})
    assert not validator("orientation").is_valid({**orientation, "date_creation": "2026-01-15T09:30:00+00:00"})
    assert not validator("orientation").is_valid({**orientation, "decision": {"parcours_preconise": "PSO"}})
    activite = {
        "identifiantActivite": "a",
        "codeActivite": "ACT382",
        "usager": {"identifiant": "1", "typeIdentifiant": "numeroFranceTravail"},
        "dateCreation": "2026-01-15T09:30:00Z",
        "dateEcheance": "2026-02-04T00:00:00Z",
        "attributsSpecifiques": [],
    }
    assert validator("activites_v1").is_valid([activite])
    assert not validator("activites_v1").is_valid([{**activite, "dateEcheance": "2026-02-04"}])


class TestOrientationAndActivites:
    def test_every_orientation_and_activites_answer_is_ft_shaped(self, hub: Hub) -> None:
        access = token(hub, RECHERCHE_SCOPES, ORIENTATION_SCOPES, ACTIVITES_V1_SCOPES, ACTIVITES_V2_SCOPES)
        usager = {"ft-jeton-usager": jeton(hub, access)}
        headers = hub.headers(access, **usager)
        preconiser(hub)
        # The département's decisions to take (collection 2.1.1, v2; the demo client reads v1).
        assert_ft_shape(
            "activites_v2", hub.client.get(ACTIVITES_V2, params={"codeActivite": "ACT382"}, headers=headers)
        )
        assert_ft_shape(
            "activites_v1", hub.client.get(ACTIVITES_V1, params={"codeActivite": "ACT382"}, headers=headers)
        )
        assert_ft_shape("orientations", hub.client.get(f"{ORIENTATION}/lectureOrientation", headers=headers))
        # FT's own refusal example: the CD refuses and proposes France Travail.
        refus = {
            "etat_decision": "REFUSEE",
            "date_decision": hub.clock.now.date().isoformat(),
            "organisme_decision": "CD",
            "agent_decision": "TEST_POSTMAN",
            "motif_refus": "APPRECIATION_DIFFERENTE",
            "parcours": "PSO",
            "organisme": "FT",
        }
        decided = hub.client.post(f"{ORIENTATION}/decisionOrientation", json=refus, headers=headers)
        assert assert_ft_shape("orientation", decided, 201)["decision"]["etat_decision"] == "REFUSEE"
        # The collection's calculOrientation body, with its criteria FT's class does not show.
        criteres = {
            "brsa": True,
            "date_naissance": "1998-04-23",
            "adresse": {"code_commune": "33063", "libelle_commune": "BORDEAUX", "code_postal": "33100"},
            "situation_professionnelle": "JAMAIS",
            "type_emploi": "AUTRE",
            "capacite_a_travailler": False,
            "contrainte_sante": "INCAPACITE_RECHERCHE_ACTIVITE_PRO",
            "msa_autonomie_recherche_emploi": 1,
            "msa_demarches_professionnelles": "AUCUNE_DEMARCHE",
        }
        calcul = hub.client.post(f"{ORIENTATION}/calculOrientation", json=criteres, headers=headers)
        assert assert_ft_shape("orientation", calcul)["etat"] == "EN_ATTENTE"
        forcee = {
            "organisme": "CD",
            "origine": "INSCRIPTION_VOLONTAIRE",
            "parcours": "PSO",
            "structure": {"code_aurore": "NAQ0405", "code_safir": "33014"},
        }
        assert_ft_shape("orientation", hub.client.post(f"{ORIENTATION}/orientation", json=forcee, headers=headers), 201)
        assert_ft_shape("orientations", hub.client.get(f"{ORIENTATION}/lectureOrientation", headers=headers))
        assert_ft_shape(
            "activites_v2", hub.client.get(ACTIVITES_V2, params={"codeActivite": "ACT380"}, headers=headers)
        )

    def test_relais_explanations_only_on_opt_in(self, hub: Hub) -> None:
        access = token(hub, RECHERCHE_SCOPES, ORIENTATION_SCOPES)
        headers = hub.headers(access, **{"ft-jeton-usager": jeton(hub, access), "X-Relais-Details": "oui"})
        body = hub.client.post(f"{ORIENTATION}/calculOrientation", json={"brsa": True}, headers=headers).json()
        assert body["justification"][0]["regle"] == "criteres_manquants"
        assert not validator("orientation").is_valid(body)


class TestScopesAsFranceTravail:
    def test_informations_administratives_without_profil_accedant(self, hub: Hub) -> None:
        # FT's group ref_scopes_infos_admin (Postman environment) has no profil_accedant.
        access = token(hub, RECHERCHE_SCOPES, "api_informations-administrativesv1 informationsadministrativesusager")
        response = hub.client.get(INFOS, headers=hub.headers(access, **{"ft-jeton-usager": jeton(hub, access)}))
        assert assert_ft_shape("informations_administratives", response)["numeroFranceTravail"] == GIRONDE.numero

    def test_contrat_engagement_needs_the_technical_scope_only(self, hub: Hub) -> None:
        access = token(hub, RECHERCHE_SCOPES, "api_contrat-engagementv1")
        response = hub.client.get(
            f"{CONTRAT}/lecture", headers=hub.headers(access, **{"ft-jeton-usager": jeton(hub, access)})
        )
        assert response.status_code in (200, 204), response.text
        without = token(hub, RECHERCHE_SCOPES)
        response = hub.client.get(
            f"{CONTRAT}/lecture", headers=hub.headers(without, **{"ft-jeton-usager": jeton(hub, without)})
        )
        assert response.status_code == 403


class TestSanctionsAsTheDiagram:
    def test_levee_is_act369_and_refusals_are_200_with_code_sortie(self, hub: Hub) -> None:
        with hub.services.database.transaction() as session:
            usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
            levee = sanctions_domain.proposer_consequence(
                session, usager, {"typeConsequenceSanction": "LEVEE_SUSP_RSA"}, now=hub.clock.now
            ).id
        access = token(hub, RECHERCHE_SCOPES, SANCTIONS_SCOPES, ACTIVITES_V2_SCOPES)
        headers = hub.headers(access, **{"ft-jeton-usager": jeton(hub, access)})
        page = hub.client.get(ACTIVITES_V2, params={"codeFamille": "GLI100"}, headers=headers)
        codes = {item["codeActivite"] for item in assert_ft_shape("activites_v2", page)["activites"]}
        assert codes == {"ACT369"}

        def evenement(type_: str) -> httpx.Response:
            body = {
                "identifiantConsequenceSanction": levee,
                "evenement": {"typeEvenement": type_, "dateEvenement": hub.clock.now.date().isoformat()},
            }
            return hub.client.post(f"{SANCTIONS}/evenementSanctionRSA", json=body, headers=headers)

        refused = assert_ft_shape("resultat_sanction", evenement("SAISIE_SANCTION"))
        assert (refused["codeSortie"], set(refused)) == ("C003", {"codeSortie", "message"})
        assert assert_ft_shape("resultat_sanction", evenement("VALID_LEVEE_SUSP"))["codeSortie"] == "C001"
        assert hub.client.get(ACTIVITES_V2, params={"codeFamille": "GLI100"}, headers=headers).status_code == 204


@pytest.mark.parametrize("path", ["par-numero-francetravail", "par-datenaissance-et-nir"])
def test_rechercher_usager_is_ft_openapi_shaped(hub: Hub, path: str) -> None:
    body = (
        {"numeroFranceTravail": GIRONDE.numero}
        if path == "par-numero-francetravail"
        else {"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir}
    )
    response = hub.client.post(f"{RECHERCHE}/{path}", json=body, headers=hub.headers(token(hub, RECHERCHE_SCOPES)))
    assert assert_ft_shape("resultat_recherche", response)["codeRetour"] == "S001"
