"""What a strictly typed client of France Travail sees: every partner answer in FT's own shape.

The schemas under ``ft_schemas/`` re-express FT's published material: the Java demo client of
``France-Travail/si_plateforme`` with Jackson's defaults (unknown properties fail, ``Instant`` /
``LocalDate`` / ``InstantWithoutZDeserializer`` formats), FT's one public OpenAPI (Rechercher
usager v2), the LPE collection and the Arazzo workflows, and, where FT publishes nothing, the
answers FT's real clients read (les-emplois' mocks, rdv-insertion's payload) or, failing that,
our own spec: each schema's ``$comment`` names its source. All are closed (no additional
properties) with FT's date formats as patterns. ``OPERATIONS`` maps every partner operation to
its schema; one walk calls every operation on the hub and checks each answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import select

from parcours import orientation as orientation_domain
from parcours import sanctions as sanctions_domain
from parcours.tables import Usager
from tests.support.ft_schemas import (
    OPERATIONS,
    SCHEMAS,
    assert_ft_operation,
    assert_ft_shape,
    partner_operations,
    validator,
)
from tests.support.hub import Hub
from tests.support.people import GIRONDE, RATTACHE_EXPLICITE, Person
from tests.support.scopes import (
    ACTIVITES_V1_SCOPES,
    ACTIVITES_V2_SCOPES,
    CONTRAT_ENGAGEMENT_SCOPES,
    DIAGNOSTIC_SCOPES,
    INFOS,
    INFOS_SCOPES,
    ORIENTATION_SCOPES,
    RDV_SCOPES,
    RECHERCHE,
    RECHERCHE_SCOPES,
    SANCTIONS_SCOPES,
    STATUT,
    STATUT_SCOPES,
)

ORIENTATION = "/partenaire/orientationusager/v1"
ACTIVITES_V1 = "/partenaire/activites-operationnelles/v1/activites/chercher"
ACTIVITES_V2 = "/partenaire/activites-operationnelles/v2/activites/chercher"
SANCTIONS = "/partenaire/gestion-sanctions-rsa/v1"
CONTRAT = "/partenaire/contrat-engagement/v1"
RDV = "/partenaire/rendez-vous-partenaire/v1"
DIAGNOSTICS = "/partenaire/diagnosticargumente/v4/diagnostics"
ALL_PARTNER_SCOPES = (
    RECHERCHE_SCOPES,
    INFOS_SCOPES,
    STATUT_SCOPES,
    ORIENTATION_SCOPES,
    ACTIVITES_V1_SCOPES,
    ACTIVITES_V2_SCOPES,
    RDV_SCOPES,
    CONTRAT_ENGAGEMENT_SCOPES,
    SANCTIONS_SCOPES,
    DIAGNOSTIC_SCOPES,
)


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
    rdv = {
        "id": "r1",
        "date": "2030-10-01T10:30:00.000+02:00",
        "motif": "ACC",
        "statut": "PRIS",
        "organisme": {"code": "CD"},
    }
    assert validator("rendez_vous").is_valid(rdv)
    assert not validator("rendez_vous").is_valid({**rdv, "date": "2030-10-01T10:30:00"})
    assert not validator("rendez_vous_liste").is_valid([{**rdv, "organisme": {"code": "CD", "siret": "1"}}])
    detail = {
        "identifiantConsequenceSanction": "c1",
        "typeConsequenceSanction": "SUSP_RSA",
        "modaliteProposee": "P",
        "montantPropose": 50,
        "dureeProposee": 2,
    }
    assert validator("detail_manquement").is_valid(detail)
    assert not validator("detail_manquement").is_valid({**detail, "historique": []})
    assert not validator("statut_usager").is_valid({"m_contrat": {"m_statut": "Inscrit"}})


def test_every_partner_operation_has_a_strict_schema() -> None:
    """Each operation of each partner spec is mapped to its FT schema (a new one must be too)."""
    operations = partner_operations()
    assert len(operations) >= 26
    assert set(operations) == set(OPERATIONS)
    for name in {schema for schema in OPERATIONS.values() if schema is not None}:
        schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
        # Strict: every object closed, and a source said for what FT does not publish.
        assert schema["$comment"], name
        for node in _objects(schema):
            assert node.get("additionalProperties") is False, (name, node)
        validator(name)


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        types = node.get("type")
        if types == "object" or (isinstance(types, list) and "object" in types):
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


class Walk:
    """A département calling every partner operation once, each answer checked as FT's client reads it."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.access = token(hub, *ALL_PARTNER_SCOPES)
        self.seen: set[str] = set()

    def usager(self, person: Person = GIRONDE) -> dict[str, str]:
        """The headers of calls about ``person``, with the jeton Rechercher usager gives."""
        search = self.hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": person.numero},
            headers=self.hub.headers(self.access),
        )
        found = self.check("RechercherUsagerParNumeroFranceTravail", search)
        return self.hub.headers(self.access, **{"ft-jeton-usager": found["jetonUsager"]})

    def check(self, operation_id: str, response: httpx.Response, status: int = 200) -> Any:
        body = assert_ft_operation(operation_id, response, status)
        self.seen.add(operation_id)
        return body


def test_every_partner_operation_answers_in_ft_shape(hub: Hub) -> None:
    walk = Walk(hub)
    client = hub.client
    today = hub.clock.today().isoformat()
    # Rechercher usager, both ways, then the usager's file and status.
    by_nir = {"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir}
    walk.check(
        "RechercherUsagerParDateNaissanceEtNir",
        client.post(f"{RECHERCHE}/par-datenaissance-et-nir", json=by_nir, headers=hub.headers(walk.access)),
    )
    headers = walk.usager()
    walk.check("recupererDonneesParIdRci", client.get(INFOS, headers=headers))
    assert walk.check("recupererContratV2", client.get(STATUT, headers=headers))["m_contrat"]["m_statut"]

    # Orientation: the decision to take (collection 2.1.1 reads v2, the demo client v1).
    preconiser(hub)
    walk.check("chercherActivitesV2", client.get(ACTIVITES_V2, params={"codeActivite": "ACT382"}, headers=headers))
    walk.check("chercherActivites", client.get(ACTIVITES_V1, params={"codeActivite": "ACT382"}, headers=headers))
    walk.check("lectureOrientation", client.get(f"{ORIENTATION}/lectureOrientation", headers=headers))
    # FT's own refusal example: the CD refuses and proposes France Travail.
    refus = {
        "etat_decision": "REFUSEE",
        "date_decision": today,
        "organisme_decision": "CD",
        "agent_decision": "TEST_POSTMAN",
        "motif_refus": "APPRECIATION_DIFFERENTE",
        "parcours": "PSO",
        "organisme": "FT",
    }
    decided = client.post(f"{ORIENTATION}/decisionOrientation", json=refus, headers=headers)
    assert walk.check("decisionOrientation", decided, 201)["decision"]["etat_decision"] == "REFUSEE"
    # The collection's calculOrientation body, with criteria FT's class does not show.
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
    calcul = client.post(f"{ORIENTATION}/calculOrientation", json=criteres, headers=headers)
    assert walk.check("calculOrientation", calcul)["etat"] == "EN_ATTENTE"

    # Contrat d'engagement: a first one refused, then signed; a re-orientation puts it back
    # « à signer », and it is refused again.
    assert client.get(f"{CONTRAT}/lecture", headers=headers).status_code == 204
    refused = client.post(f"{CONTRAT}/refuser", json={"dateRefus": hub.clock.now.isoformat()}, headers=headers)
    assert walk.check("refuserPremierContratEngagement", refused)["etat"] == "REFUSE"
    signed = client.patch(f"{CONTRAT}/signer", json={"dateSignature": hub.clock.now.isoformat()}, headers=headers)
    assert walk.check("signerContratEngagement", signed)["etat"] == "SIGNE"
    forcee = {
        "organisme": "CD",
        "origine": "INSCRIPTION_VOLONTAIRE",
        "parcours": "PSO",
        "structure": {"code_aurore": "NAQ0405", "code_safir": "33014"},
    }
    walk.check("orientation", client.post(f"{ORIENTATION}/orientation", json=forcee, headers=headers), 201)
    assert walk.check("lireContratEngagement", client.get(f"{CONTRAT}/lecture", headers=headers))["etat"] == "A_SIGNER"
    again = client.patch(f"{CONTRAT}/refuser", json={"dateRefus": hub.clock.now.isoformat()}, headers=headers)
    assert walk.check("refuserContratEngagement", again)["etat"] == "REFUSE"
    other = walk.usager(RATTACHE_EXPLICITE)
    first = client.post(f"{CONTRAT}/signer", json={"dateSignature": hub.clock.now.isoformat()}, headers=other)
    assert walk.check("signerPremierContratEngagement", first)["etat"] == "SIGNE"

    # Rendez-vous partenaire: the first accompaniment appointment ACT380 asks for (collection 3.x).
    (act380,) = walk.check(
        "chercherActivitesV2", client.get(ACTIVITES_V2, params={"codeActivite": "ACT380"}, headers=headers)
    )["activites"]
    motif = {a["nom"]: a["valeur"] for a in act380["attributsSpecifiques"]}["motif"]
    rdv = {
        "organisme": {"code": "CD", "emailContact": "test_postman@gmail.com"},
        "motif": motif,
        "date": "2030-10-01T10:30:00.000Z",
        "modaliteContact": "PHYSIQUE",
        "typeReception": "IND",
        "statut": "PRIS",
        "libelleAdresse": "Agence Périgueux",
        "adresse": "134 AVENUE du Maréchal Juin 24000 Périgueux",
    }
    cree = walk.check("creerRendezVous", client.post(f"{RDV}/rendez-vous", json=rdv, headers=headers), 202)
    moved = {**rdv, "id": cree["id"], "statut": "MODIFIE", "date": "2030-10-02T10:30:00.000Z"}
    walk.check("modifierRendezVous", client.put(f"{RDV}/rendez-vous", json=moved, headers=headers))
    (listed,) = walk.check("consulterRendezVousUsager", client.get(f"{RDV}/rendez-vous-usager", headers=headers))
    assert (listed["id"], listed["statut"]) == (cree["id"], "MODIFIE")
    walk.check("supprimerRendezVous", client.delete(f"{RDV}/rendez-vous/{cree['id']}", headers=headers), 204)

    # Diagnostic argumenté v4 (collection 4.2): create, list, delete.
    metier = {"codeAppellation": "10857", "codeRome": "K1304", "codeSousTypologie": None, "codeTypologie": "MR"}
    diagnostic = walk.check("creerDiagnostic", client.post(DIAGNOSTICS, json=metier, headers=headers))
    listed_diagnostics = walk.check("recupererDiagnostics", client.get(DIAGNOSTICS, headers=headers))["diagnostics"]
    assert [d["idDiagnostic"] for d in listed_diagnostics] == [diagnostic["idDiagnostic"]]
    supprime = client.delete(f"{DIAGNOSTICS}/{diagnostic['idDiagnostic']}/supprime", headers=headers)
    walk.check("supprimerDiagnostic", supprime)

    # Gestion des sanctions RSA: FT's proposal read and instructed; the CD's own decision, then
    # the radiation it asks for (collection 6.x, Arazzo workflows).
    with hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
        proposition = {
            "typeConsequenceSanction": "SUSP_RSA",
            "modaliteProposee": "P",
            "montantPropose": 50,
            "dureeProposee": 2,
            "natureManquement": "N65",
            "rangManquement": "R1",
        }
        identifiant = sanctions_domain.proposer_consequence(session, usager, proposition, now=hub.clock.now).id
    detail = client.get(f"{SANCTIONS}/detailManquement", params={"identifiantSanction": identifiant}, headers=headers)
    assert walk.check("lireDetailSanctionRsa", detail)["dureeProposee"] == 2
    saisie = {
        "identifiantConsequenceSanction": identifiant,
        "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": today},
    }
    evenement = client.post(f"{SANCTIONS}/evenementSanctionRSA", json=saisie, headers=headers)
    assert walk.check("traiterSanctionRsa", evenement)["codeSortie"] == "C001"
    decision = {
        "dateNotificationDecisionSanction": today,
        "natureManquement": "N65",
        "rangManquement": "R2",
        "typeSanctionValide": "SUSP_RSA",
        "modaliteDecisionValidee": "P",
        "montantValide": 50,
        "dureeValidee": 4,
    }
    decidee = client.post(f"{SANCTIONS}/decisionSanctionRSAPartenaire", json=decision, headers=headers)
    decidee_body = walk.check("traiterDecisionSanctionRSA", decidee)
    assert decidee_body["codeSortie"] == "C001"
    radiation = {"identifiantConsequenceSanction": decidee_body["identifiantConsequenceSanction"]}
    demande = client.post(f"{SANCTIONS}/demandeRadiation", json=radiation, headers=headers)
    assert walk.check("demandeRadiation", demande)["codeSortie"] == "C001"

    assert walk.seen == set(partner_operations())


class TestRelaisAdditions:
    def test_relais_explanations_only_on_opt_in(self, hub: Hub) -> None:
        access = token(hub, RECHERCHE_SCOPES, ORIENTATION_SCOPES)
        headers = hub.headers(access, **{"ft-jeton-usager": jeton(hub, access), "X-Relais-Details": "oui"})
        body = hub.client.post(f"{ORIENTATION}/calculOrientation", json={"brsa": True}, headers=headers).json()
        assert body["justification"][0]["regle"] == "criteres_manquants"
        assert not validator("orientation").is_valid(body)

    def test_detail_manquement_state_and_history_only_on_opt_in(self, hub: Hub) -> None:
        with hub.services.database.transaction() as session:
            usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
            proposition = {"typeConsequenceSanction": "SUPP_RSA", "natureManquement": "N65", "rangManquement": "R3"}
            identifiant = sanctions_domain.proposer_consequence(session, usager, proposition, now=hub.clock.now).id
        access = token(hub, RECHERCHE_SCOPES, SANCTIONS_SCOPES)
        headers = hub.headers(access, **{"ft-jeton-usager": jeton(hub, access)})
        url = f"{SANCTIONS}/detailManquement"
        plain = hub.client.get(url, params={"identifiantSanction": identifiant}, headers=headers)
        assert assert_ft_shape("detail_manquement", plain)["typeConsequenceSanction"] == "SUPP_RSA"
        headers["X-Relais-Details"] = "oui"
        body = hub.client.get(url, params={"identifiantSanction": identifiant}, headers=headers).json()
        assert (body["etatConsequenceSanction"], body["codeActivite"]) == ("A_TRAITER", "ACT370")
        assert not validator("detail_manquement").is_valid(body)


def test_statut_usager_has_all_of_ft_keys_when_the_stored_status_lacks_some(hub: Hub) -> None:
    # A status imported with only its statut and date still answers FT's thirteen keys.
    with hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
        usager.contrat = {"m_statut": "Inscrit", "m_date_effet_statut": "2025-06-28"}
        session.add(usager)
    access = token(hub, RECHERCHE_SCOPES, STATUT_SCOPES)
    response = hub.client.get(STATUT, headers=hub.headers(access, **{"ft-jeton-usager": jeton(hub, access)}))
    contrat = assert_ft_operation("recupererContratV2", response)["m_contrat"]
    assert (contrat["m_statut"], contrat["m_duree_inscription_12"], len(contrat)) == ("Inscrit", None, 13)


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
                "evenement": {"typeEvenement": type_, "dateEvenement": hub.clock.today().isoformat()},
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
