"""Relais' producer feed (alimentation v1), end to end: a producer registers usagers and their
inscription, publishes preconisations and opens manquements; départements see the result
through the partner APIs and their activities. Refusals write nothing and every call is audited.

One app and database serve the whole module (building them is most of a test's time): each
test registers its own usagers through the feed, so tests do not see each other's data.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlmodel import col, select

from audit.models import AuditEvent
from audit.verify import verify_database
from parcours import alimentation as alimentation_domain
from parcours import contrat as contrat_domain
from parcours.tables import Activite, ConsequenceSanction, ContratEngagement, Orientation, Usager
from relais.core.nir import nir_key
from relais.core.tables import Organisation
from tests.support.hub import Hub
from tests.support.people import Person
from tests.support.scopes import (
    ALIMENTATION_SCOPES,
    INFOS,
    INFOS_SCOPES,
    ORIENTATION_SCOPES,
    RECHERCHE,
    RECHERCHE_SCOPES,
    STATUT,
    STATUT_SCOPES,
)

FEED = "/relais/alimentation/v1"
LECTURE_ORIENTATION = "/partenaire/orientationusager/v1/lectureOrientation"
UNKNOWN_NUMERO = "19999999999"
_SEQUENCE = itertools.count(1)


@dataclass
class ModuleHub(Hub):
    """Reuses access tokens: the token endpoint caps attempts per client (10 per second)."""

    _tokens: dict[tuple[str, str], tuple[datetime, str]] = field(default_factory=dict)

    def token(self, client_id: str = "cd33", scope: str = f"{RECHERCHE_SCOPES} {INFOS_SCOPES} {STATUT_SCOPES}") -> str:
        issued = self._tokens.get((client_id, scope))
        now = self.clock.now
        if issued is None or not issued[0] <= now < issued[0] + timedelta(minutes=10):
            issued = (now, super().token(client_id, scope))
            self._tokens[(client_id, scope)] = issued
        return issued[1]


@pytest.fixture(scope="module")
def hub(module_hub: Hub) -> Hub:
    return ModuleHub(module_hub.client, module_hub.services, module_hub.clock)


@pytest.fixture(autouse=True)
def real_time(hub: Hub) -> Iterator[None]:
    hub.clock.now = datetime.now(UTC)
    yield
    hub.clock.now = datetime.now(UTC)


def new_person(departement: str = "33") -> Person:
    """An usager nobody else in this module uses (not registered yet)."""
    n = next(_SEQUENCE)
    nir13 = f"2930533063{n:03d}" if departement == "33" else f"2930593066{n:03d}"
    return Person(f"2{n:010d}", nir13, "1993-05-21", departement)


def usager_body(person: Person, **extra: Any) -> dict[str, Any]:
    commune = {
        "33": {"codeInseeCommune": "33281", "codePostal": "33700", "libelleCommune": "MERIGNAC"},
        "93": {"codeInseeCommune": "93066", "codePostal": "93200", "libelleCommune": "SAINT-DENIS"},
    }[person.departement]
    body: dict[str, Any] = {
        "etatCivil": {
            "civilite": "Mme",
            "nom": "LACOSTE",
            "prenom": "MANON",
            "nomCorrespondance": "LACOSTE",
            "prenomCorrespondance": "MANON",
            "dateNaissance": person.naissance,
            "nir": person.nir,
        },
        "adresses": [
            {
                **commune,
                "libellePays": "FRANCE",
                "numeroTypeLibelleVoie": "4 RUE DES VIGNES",
                "indicateurResidentQPV": "NQ",
            }
        ],
        "emails": [{"adresseEmail": "manon.lacoste@example.org"}],
        "telephones": [{"numeroTelephone": "0639981234"}],
        "topIdentiteCertifiee": "O",
    }
    body.update(extra)
    return body


PRECONISATION = {
    "parcours": "PSO",
    "organisme": "CD",
    "structure": {"code_aurore": "NAQ0405", "code_safir": "33014", "libelle_structure": "Département de la Gironde"},
    "origine": "INSCRIPTION_VOLONTAIRE",
    "criteres_orientation": {"brsa": True, "situation_professionnelle": "JAMAIS"},
}
INSCRIPTION = {
    "m_date_effet_statut": "2025-06-28",
    "m_duree_inscription_12": 9,
    "m_motif_inscription_code": "11",
    "m_motif_inscription_lib": "LICENCIEMENT ECONOMIQUE",
}
CESSATION = {
    "m_date_effet_statut": "2026-02-01",
    "m_motif_cloture_code": "RE",
    "m_motif_cloture_lib": "REPRISE D'EMPLOI DECLAREE",
}
REINSCRIPTION = {
    "m_date_effet_statut": "2026-04-01",
    "m_motif_inscription_code": "14",
    "m_motif_inscription_lib": "FIN DE CONTRAT A DUREE DETERMINEE",
    "m_categ_inscription_code": "1",
    "m_categ_inscription_lib": "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PLEIN TPS",
}


def manquement(identifiant: str) -> dict[str, Any]:
    return {
        "natureManquement": "N65",
        "rangManquement": "R2",
        "dateManquement": "2026-01-12",
        "consequences": [
            {
                "identifiantConsequenceSanction": identifiant,
                "typeConsequenceSanction": "SUSP_RSA",
                "modaliteProposee": "P",
                "montantPropose": 50,
                "dureeProposee": 2,
            }
        ],
    }


def feed_headers(hub: Hub, scope: str = ALIMENTATION_SCOPES, **extra: str) -> dict[str, str]:
    return hub.headers(hub.token("ft-naq", scope), **extra)


def usager_url(numero: str, suffix: str = "") -> str:
    return f"{FEED}/usagers/{numero}{suffix}"


def registered(hub: Hub, departement: str = "33", *, inscrit: bool = False) -> Person:
    """A new usager, registered through the feed (and inscrit if asked)."""
    person = new_person(departement)
    headers = feed_headers(hub)
    assert hub.client.put(usager_url(person.numero), json=usager_body(person), headers=headers).status_code == 201
    if inscrit:
        response = hub.client.post(usager_url(person.numero, "/inscription"), json=INSCRIPTION, headers=headers)
        assert response.status_code == 200, response.text
    return person


def usager_id(hub: Hub, person: Person) -> str:
    with hub.services.database.session() as session:
        return session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one().id


def open_activities(hub: Hub, code: str, person: Person, organisation: str = "CD33") -> list[Activite]:
    with hub.services.database.session() as session:
        org = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        uid = session.exec(select(Usager.id).where(Usager.numero_france_travail == person.numero)).first()
        return list(
            session.exec(
                select(Activite).where(
                    Activite.code_activite == code,
                    Activite.organisation_id == org.id,
                    Activite.usager_id == uid,
                    col(Activite.closed_at).is_(None),
                )
            )
        )


# Usager ---------------------------------------------------------------------------------------


class TestEnregistrerUsager:
    def test_creates_then_is_idempotent_then_updates(self, hub: Hub) -> None:
        person = new_person()
        headers = feed_headers(hub)

        created = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=headers)
        again = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=headers)
        moved = usager_body(person)
        moved["adresses"][0]["numeroTypeLibelleVoie"] = "8 AVENUE JEAN JAURES"
        updated = hub.client.put(usager_url(person.numero), json=moved, headers=headers)

        assert (created.status_code, created.json()) == (
            201,
            {"numeroFranceTravail": person.numero, "resultat": "CREE"},
        )
        assert (again.status_code, again.json()["resultat"]) == (200, "INCHANGE")
        assert (updated.status_code, updated.json()["resultat"]) == (200, "MODIFIE")

    def test_the_departement_then_finds_the_usager_by_nir_and_reads_it(self, hub: Hub) -> None:
        person = registered(hub)
        token = hub.token("cd33")

        found = hub.client.post(
            f"{RECHERCHE}/par-datenaissance-et-nir",
            json={"nir": person.nir, "dateNaissance": person.naissance},
            headers=hub.headers(token),
        )
        jeton = found.json()["jetonUsager"]
        infos = hub.client.get(INFOS, headers=hub.headers(token, **{"ft-jeton-usager": jeton}))
        statut = hub.client.get(STATUT, headers=hub.headers(token, **{"ft-jeton-usager": jeton}))

        assert (found.json()["codeRetour"], found.json()["topIdentiteCertifiee"]) == ("S001", "O")
        assert infos.json()["etatCivil"]["nir"] == person.nir13
        assert infos.json()["adresses"][0]["libelleCommune"] == "MERIGNAC"
        # Registered, but no inscription yet.
        assert statut.status_code == 204

    def test_a_wrong_nir_key_is_refused_without_writing_or_quoting_it(self, hub: Hub) -> None:
        person = new_person()
        bad_key = "01" if nir_key(person.nir13) != "01" else "02"
        body = usager_body(person)
        body["etatCivil"]["nir"] = person.nir13 + bad_key

        response = hub.client.put(usager_url(person.numero), json=body, headers=feed_headers(hub))

        assert response.status_code == 400
        assert response.json() == {
            "codeHttp": 400,
            "codeErreur": "NIR_INVALIDE",
            "message": "NIR invalide (clé de contrôle incorrecte)",
        }
        assert person.nir13 not in response.text
        with hub.services.database.session() as session:
            assert session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).first() is None

    def test_a_birth_date_in_the_future_is_refused(self, hub: Hub) -> None:
        person = new_person()
        body = usager_body(person)
        body["etatCivil"]["dateNaissance"] = "2999-01-01"

        response = hub.client.put(usager_url(person.numero), json=body, headers=feed_headers(hub))

        assert (response.status_code, response.json()["codeErreur"]) == (400, "DATE_NAISSANCE_INVALIDE")

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"etatCivil": None}, "champ etatCivil"),
            ({"surnom": "X"}, "champ surnom non prévu par le contrat"),
            ({"topIdentiteCertifiee": "X"}, "champ topIdentiteCertifiee invalide"),
        ],
        ids=["missing", "unexpected", "invalid"],
    )
    def test_a_bad_body_is_400(self, hub: Hub, change: dict[str, Any], message: str) -> None:
        person = new_person()
        body = {key: value for key, value in {**usager_body(person), **change}.items() if value is not None}

        response = hub.client.put(usager_url(person.numero), json=body, headers=feed_headers(hub))

        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert message in response.json()["message"]

    def test_text_no_database_stores_is_400(self, hub: Hub) -> None:
        person = new_person()
        body = usager_body(person)
        body["etatCivil"]["prenom"] = "MA\u0000NON"
        manquement_body = manquement("NUL-1")
        manquement_body["libelleManquement"] = "absence\ud800"

        response = hub.client.put(usager_url(person.numero), json=body, headers=feed_headers(hub))
        # json.dumps escapes the lone surrogate (\ud800), as a client's JSON would carry it.
        other = hub.client.post(
            usager_url(registered(hub).numero, "/manquements"),
            content=json.dumps(manquement_body).encode(),
            headers=feed_headers(hub, **{"Content-Type": "application/json"}),
        )

        assert response.status_code == 400
        assert (
            response.json()["message"] == "Requête invalide : champ etatCivil.prenom invalide : caractère non autorisé"
        )
        assert (other.status_code, other.json()["codeErreur"]) == (400, "REQUETE_INVALIDE")

    def test_a_bad_numero_in_the_path_is_400(self, hub: Hub) -> None:
        response = hub.client.put(usager_url("1234"), json=usager_body(new_person()), headers=feed_headers(hub))

        assert (response.status_code, response.json()["codeErreur"]) == (400, "REQUETE_INVALIDE")

    def test_agent_headers_are_required(self, hub: Hub) -> None:
        person = new_person()
        headers = feed_headers(hub)
        del headers["pa-identifiant-agent"]

        response = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=headers)

        assert response.status_code == 400
        assert response.json()["message"] == "Requête invalide : en-tête pa-identifiant-agent absent"

    def test_a_concurrent_creation_of_the_same_numero_is_a_clean_409(
        self, hub: Hub, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        person = registered(hub)
        # As if another call created the usager between this call's read and its insert.
        monkeypatch.setattr(alimentation_domain, "usager_par_numero", lambda *args, **kwargs: None)

        response = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=feed_headers(hub))

        assert (response.status_code, response.json()["codeErreur"]) == (409, "MODIFICATION_CONCURRENTE")
        monkeypatch.undo()
        again = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=feed_headers(hub))
        assert (again.status_code, again.json()["resultat"]) == (200, "INCHANGE")

    def test_a_body_that_is_not_json_is_415(self, hub: Hub) -> None:
        person = new_person()
        headers = feed_headers(hub, **{"Content-Type": "text/plain"})

        response = hub.client.put(usager_url(person.numero), content=b"nom=DUPONT", headers=headers)

        assert response.status_code == 415
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"


class TestScopes:
    def test_a_departement_and_a_narrow_producer_token_are_refused(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        # cd33 holds every partner scope, none of the feed's.
        departement = hub.headers(hub.token("cd33", ORIENTATION_SCOPES))
        usager_only = feed_headers(hub, "api_alimentationv1 alimentationusager")
        calls = (
            ("PUT", usager_url(person.numero), usager_body(person), departement),
            ("POST", usager_url(person.numero, "/cessation"), CESSATION, departement),
            ("POST", usager_url(person.numero, "/orientations"), PRECONISATION, departement),
            ("POST", usager_url(person.numero, "/manquements"), manquement("SCOPE-1"), departement),
            ("POST", usager_url(person.numero, "/orientations"), PRECONISATION, usager_only),
            ("POST", usager_url(person.numero, "/manquements"), manquement("SCOPE-2"), usager_only),
        )

        for method, url, body, headers in calls:
            response = hub.client.request(method, url, json=body, headers=headers)
            assert response.status_code == 403, url
            assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
        allowed = hub.client.put(usager_url(person.numero), json=usager_body(person), headers=usager_only)

        assert allowed.status_code == 200
        assert open_activities(hub, "ACT382", person) == [] and open_activities(hub, "ACT366", person) == []

    def test_no_token_is_401(self, hub: Hub) -> None:
        person = new_person()

        response = hub.client.put(usager_url(person.numero), json=usager_body(person), headers={"pa-nom-agent": "X"})

        assert response.status_code == 401


# Inscription and cessation ----------------------------------------------------------------------------


def statut_seen_by_cd33(hub: Hub, person: Person) -> dict[str, Any] | None:
    token = hub.token("cd33")
    response = hub.client.get(STATUT, headers=hub.headers(token, **{"ft-jeton-usager": hub.jeton(person)}))
    return None if response.status_code == 204 else dict(response.json()["m_contrat"])


def signed_contract(hub: Hub, person: Person) -> None:
    with hub.services.database.transaction() as session:
        contrat_domain.enregistrer_contrat(
            session,
            usager_id(hub, person),
            {"etat": "SIGNE", "dateSignature": "2026-01-05T10:00:00+00:00"},
            now=hub.clock.now,
        )


def contract_state(hub: Hub, person: Person) -> str:
    with hub.services.database.session() as session:
        uid = session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one().id
        return session.exec(select(ContratEngagement).where(ContratEngagement.usager_id == uid)).one().etat


class TestStatutInscription:
    def test_a_first_inscription_is_what_statut_usager_shows(self, hub: Hub) -> None:
        person = registered(hub)

        response = hub.client.post(
            usager_url(person.numero, "/inscription"), json=REINSCRIPTION, headers=feed_headers(hub)
        )

        assert response.status_code == 200
        expected = {
            "m_statut": "Inscrit",
            "m_date_effet_statut": "2026-04-01",
            "m_duree_inscription_12": None,
            "m_duree_inscription_24": None,
            "m_duree_inscription_36": None,
            "m_motif_inscription_code": "14",
            "m_motif_inscription_lib": "FIN DE CONTRAT A DUREE DETERMINEE",
            "m_categ_inscription_code": "1",
            "m_categ_inscription_lib": "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PLEIN TPS",
            "m_situation_reg_emp_code": None,
            "m_situation_reg_emp_lib": None,
            "m_motif_cloture_code": None,
            "m_motif_cloture_lib": None,
        }
        assert response.json() == {"m_contrat": expected}
        assert statut_seen_by_cd33(hub, person) == expected

    def test_cessation_suspends_the_contract_and_reinscription_resumes_it(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        signed_contract(hub, person)
        headers = feed_headers(hub)

        cessation = hub.client.post(usager_url(person.numero, "/cessation"), json=CESSATION, headers=headers)
        seen_after_cessation = statut_seen_by_cd33(hub, person)
        state_after_cessation = contract_state(hub, person)
        inscription = hub.client.post(usager_url(person.numero, "/inscription"), json=REINSCRIPTION, headers=headers)

        assert cessation.status_code == 200
        contrat = cessation.json()["m_contrat"]
        assert (contrat["m_statut"], contrat["m_date_effet_statut"], contrat["m_motif_cloture_code"]) == (
            "Cessé",
            "2026-02-01",
            "RE",
        )
        # The inscription's own details stay on a closed inscription.
        assert contrat["m_motif_inscription_code"] == "11" and contrat["m_duree_inscription_12"] == 9
        assert seen_after_cessation == contrat
        assert state_after_cessation == "SUSPENDU"
        assert inscription.status_code == 200
        reinscrit = inscription.json()["m_contrat"]
        assert (reinscrit["m_statut"], reinscrit["m_date_effet_statut"]) == ("Inscrit", "2026-04-01")
        assert (reinscrit["m_motif_inscription_code"], reinscrit["m_motif_cloture_code"]) == ("14", None)
        # Durations are France Travail's running counts: kept when not given.
        assert reinscrit["m_duree_inscription_12"] == 9
        assert contract_state(hub, person) == "SIGNE"
        assert statut_seen_by_cd33(hub, person) == reinscrit

    def test_a_radiation_also_suspends_and_a_replay_changes_nothing(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        signed_contract(hub, person)
        headers = feed_headers(hub)
        radiation = {**CESSATION, "m_statut": "Radié", "m_motif_cloture_code": "NC", "m_motif_cloture_lib": "ABSENCE"}

        first = hub.client.post(usager_url(person.numero, "/cessation"), json=radiation, headers=headers)
        replay = hub.client.post(usager_url(person.numero, "/cessation"), json=radiation, headers=headers)
        other = hub.client.post(usager_url(person.numero, "/cessation"), json=CESSATION, headers=headers)

        assert first.json()["m_contrat"]["m_statut"] == "Radié"
        assert (replay.status_code, replay.json()) == (200, first.json())
        assert contract_state(hub, person) == "SUSPENDU"
        assert (other.status_code, other.json()["codeErreur"]) == (409, "USAGER_NON_INSCRIT")

    def test_refusals_change_nothing(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        never = registered(hub)
        headers = feed_headers(hub)

        def cessation(body: dict[str, Any], who: Person = person) -> tuple[int, str]:
            response = hub.client.post(usager_url(who.numero, "/cessation"), json=body, headers=headers)
            return response.status_code, response.json()["codeErreur"]

        already = hub.client.post(usager_url(person.numero, "/inscription"), json=REINSCRIPTION, headers=headers)

        assert cessation(CESSATION, never) == (409, "USAGER_NON_INSCRIT")
        assert (already.status_code, already.json()["codeErreur"]) == (409, "USAGER_DEJA_INSCRIT")
        assert cessation({"m_date_effet_statut": "2025-01-01"}) == (400, "DATE_EFFET_INVALIDE")
        assert cessation({"m_date_effet_statut": "2026-02-30"}) == (400, "DATE_EFFET_INVALIDE")
        assert cessation({**CESSATION, "m_statut": "Inscrit"}) == (400, "REQUETE_INVALIDE")
        assert cessation({**CESSATION, "motif": "X"}) == (400, "REQUETE_INVALIDE")
        assert statut_seen_by_cd33(hub, never) is None
        assert statut_seen_by_cd33(hub, person) == {**INSCRIPTION, **STATUT_VIDE, "m_statut": "Inscrit"}


# What an inscription leaves null when it does not say (INSCRIPTION sets the rest).
STATUT_VIDE = {
    "m_duree_inscription_24": None,
    "m_duree_inscription_36": None,
    "m_categ_inscription_code": None,
    "m_categ_inscription_lib": None,
    "m_situation_reg_emp_code": None,
    "m_situation_reg_emp_lib": None,
    "m_motif_cloture_code": None,
    "m_motif_cloture_lib": None,
}


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("/inscription", REINSCRIPTION),
        ("/cessation", CESSATION),
        ("/orientations", PRECONISATION),
        ("/manquements", manquement("INCONNU-1")),
    ],
)
def test_an_unknown_usager_is_404(hub: Hub, suffix: str, body: dict[str, Any]) -> None:
    response = hub.client.post(usager_url(UNKNOWN_NUMERO, suffix), json=body, headers=feed_headers(hub))

    assert response.status_code == 404
    assert response.json()["codeErreur"] == "USAGER_INCONNU"


# Orientation -----------------------------------------------------------------------------------------


class TestPreconisation:
    def test_a_preconisation_is_pending_with_act382_for_the_departement(self, hub: Hub) -> None:
        person = registered(hub)

        response = hub.client.post(
            usager_url(person.numero, "/orientations"), json=PRECONISATION, headers=feed_headers(hub)
        )
        token = hub.token("cd33", ORIENTATION_SCOPES)
        lecture = hub.client.get(
            LECTURE_ORIENTATION, headers=hub.headers(token, **{"ft-jeton-usager": hub.jeton(person)})
        )

        assert response.status_code == 201
        orientation = response.json()
        assert (orientation["etat"], orientation["statut"], orientation["parcours"]) == (
            "EN_ATTENTE",
            "PRECONISE",
            "PSO",
        )
        assert orientation["agent_creation"] == "AGT-0042"
        assert orientation["criteres_orientation"] == PRECONISATION["criteres_orientation"]
        assert lecture.status_code == 200 and lecture.json()[0]["etat"] == "EN_ATTENTE"
        assert len(open_activities(hub, "ACT382", person)) == 1

    def test_a_new_preconisation_replaces_the_pending_one(self, hub: Hub) -> None:
        person = registered(hub)
        headers = feed_headers(hub)
        hub.client.post(usager_url(person.numero, "/orientations"), json=PRECONISATION, headers=headers)

        second = hub.client.post(
            usager_url(person.numero, "/orientations"),
            json={"parcours": "IND", "organisme": "IND", "origine": "INSCRIPTION_AUTO_CAF"},
            headers=headers,
        )

        assert second.status_code == 201 and second.json()["parcours"] == "IND"
        [activity] = open_activities(hub, "ACT382", person)
        with hub.services.database.session() as session:
            etats = sorted(
                o.etat for o in session.exec(select(Orientation).where(Orientation.usager_id == activity.usager_id))
            )
        assert etats == ["CLOTURE", "EN_ATTENTE"]

    def test_a_bad_body_is_400_and_writes_nothing(self, hub: Hub) -> None:
        person = registered(hub)

        response = hub.client.post(
            usager_url(person.numero, "/orientations"),
            json={**PRECONISATION, "parcours": "XYZ"},
            headers=feed_headers(hub),
        )

        assert (response.status_code, response.json()["codeErreur"]) == (400, "REQUETE_INVALIDE")
        assert open_activities(hub, "ACT382", person) == []


# Manquement -------------------------------------------------------------------------------------------


class TestManquement:
    def test_a_proposal_goes_to_the_departement_with_act366(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)

        response = hub.client.post(
            usager_url(person.numero, "/manquements"), json=manquement("FT-2026-000123"), headers=feed_headers(hub)
        )

        assert response.status_code == 201
        [consequence] = response.json()["consequences"]
        assert consequence["identifiantConsequenceSanction"] == "FT-2026-000123"
        assert (consequence["etatConsequenceSanction"], consequence["codeActivite"]) == ("A_INSTRUIRE", "ACT366")
        assert (consequence["natureManquement"], consequence["montantPropose"]) == ("N65", 50)
        [activity] = open_activities(hub, "ACT366", person)
        assert {"nom": "identifiantConsequenceSanction", "valeur": "FT-2026-000123"} in activity.attributs

    def test_a_replay_is_200_and_a_different_proposal_under_the_same_id_409(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        elsewhere = registered(hub, "93")
        headers = feed_headers(hub)
        body = manquement("FT-2026-000124")
        hub.client.post(usager_url(person.numero, "/manquements"), json=body, headers=headers)
        changed = copy.deepcopy(body)
        changed["consequences"][0]["dureeProposee"] = 4

        replay = hub.client.post(usager_url(person.numero, "/manquements"), json=body, headers=headers)
        conflict = hub.client.post(usager_url(person.numero, "/manquements"), json=changed, headers=headers)
        other = hub.client.post(usager_url(elsewhere.numero, "/manquements"), json=body, headers=headers)

        assert replay.status_code == 200
        assert replay.json()["consequences"][0]["identifiantConsequenceSanction"] == "FT-2026-000124"
        assert (conflict.status_code, conflict.json()["codeErreur"]) == (409, "CONSEQUENCE_EXISTANTE")
        assert (other.status_code, other.json()["codeErreur"]) == (409, "CONSEQUENCE_EXISTANTE")
        assert len(open_activities(hub, "ACT366", person)) == 1

    def test_one_bad_consequence_rejects_the_whole_manquement(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        body = manquement("FT-2026-000125")
        body["consequences"].append(
            {"typeConsequenceSanction": "SUSP_RSA", "modaliteProposee": "P", "montantPropose": 10, "dureeProposee": 1}
        )

        response = hub.client.post(usager_url(person.numero, "/manquements"), json=body, headers=feed_headers(hub))

        assert response.status_code == 400
        assert "montantPropose" in response.json()["message"]
        with hub.services.database.session() as session:
            assert session.get(ConsequenceSanction, "FT-2026-000125") is None
        assert open_activities(hub, "ACT366", person) == []

    def test_identifiers_are_generated_when_absent_and_duplicates_refused(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        headers = feed_headers(hub)
        without = manquement("unused")
        del without["consequences"][0]["identifiantConsequenceSanction"]
        twice = manquement("FT-2026-000126")
        twice["consequences"].append(dict(twice["consequences"][0]))

        generated = hub.client.post(usager_url(person.numero, "/manquements"), json=without, headers=headers)
        duplicated = hub.client.post(usager_url(person.numero, "/manquements"), json=twice, headers=headers)

        assert generated.status_code == 201
        assert generated.json()["consequences"][0]["identifiantConsequenceSanction"]
        assert (duplicated.status_code, duplicated.json()["codeErreur"]) == (400, "CONSEQUENCE_EN_DOUBLE")

    def test_no_departement_covers_the_usager(self, hub: Hub) -> None:
        person = registered(hub, "93")
        with hub.services.database.transaction() as session:
            cd93 = session.exec(select(Organisation).where(Organisation.code == "CD93")).one()
            territoire, cd93.territoire = cd93.territoire, []
            session.add(cd93)
        try:
            response = hub.client.post(
                usager_url(person.numero, "/manquements"), json=manquement("FT-2026-000127"), headers=feed_headers(hub)
            )
        finally:
            with hub.services.database.transaction() as session:
                cd93 = session.exec(select(Organisation).where(Organisation.code == "CD93")).one()
                cd93.territoire = territoire
                session.add(cd93)

        assert (response.status_code, response.json()["codeErreur"]) == (400, "C009")

    def test_the_feed_clock_dates_what_it_records(self, hub: Hub) -> None:
        person = registered(hub, inscrit=True)
        hub.clock.now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

        hub.client.post(
            usager_url(person.numero, "/manquements"), json=manquement("FT-2026-000128"), headers=feed_headers(hub)
        )

        [activity] = open_activities(hub, "ACT366", person)
        assert activity.date_echeance.isoformat() == "2026-03-25"


# Audit -----------------------------------------------------------------------------------------------


def test_every_call_is_audited_on_the_producer_feed_channel(hub: Hub) -> None:
    person = new_person()
    known = registered(hub)
    headers = feed_headers(hub)
    calls = {
        "audit-created": ("PUT", usager_url(person.numero), usager_body(person), headers),
        "audit-preconised": ("POST", usager_url(known.numero, "/orientations"), PRECONISATION, headers),
        "audit-unknown": ("POST", usager_url(UNKNOWN_NUMERO, "/cessation"), CESSATION, headers),
        "audit-forbidden": ("PUT", usager_url(person.numero), usager_body(person), hub.headers(hub.token("cd33"))),
    }
    for request_id, (method, url, body, call_headers) in calls.items():
        hub.client.request(method, url, json=body, headers={**call_headers, "X-Request-Id": request_id})

    with hub.services.database.session() as session:
        found = {
            event.request_id: event
            for event in session.exec(select(AuditEvent).where(col(AuditEvent.request_id).in_(list(calls))))
        }
        chain = verify_database(session)
    created, preconised, unknown, forbidden = (found[request_id] for request_id in calls)

    assert {event.channel for event in found.values()} == {"producer-feed"}
    assert (created.operation, created.client_id, created.organisation, created.decision, created.http_status) == (
        "enregistrerUsager",
        "ft-naq",
        "FT-NAQ",
        "allowed",
        201,
    )
    assert (created.agent_nom, created.agent_prenom, created.agent_identifiant) == ("Martin", "Claire", "AGT-0042")
    assert created.usager_id == usager_id(hub, person) and created.usager_nir_index
    assert (preconised.operation, preconised.usager_id) == ("preconiserOrientation", usager_id(hub, known))
    assert (unknown.decision, unknown.http_status, unknown.reason) == ("denied", 404, "usager_inconnu")
    assert (forbidden.client_id, forbidden.http_status, forbidden.reason) == ("cd33", 403, "insufficient_scope")
    assert chain.problem is None


# Contract ------------------------------------------------------------------------------------------


def test_schemathesis_with_a_producer_token(hub: Hub) -> None:
    """tests/api/test_conformance.py runs every spec with a département's token (403 here). This runs the feed's
    operations for real, steering half the generated cases to a known usager and a valid NIR so
    that the answers of the domain rules are checked too: no 5xx, every answer in the spec."""
    token = hub.token("ft-naq", ALIMENTATION_SCOPES)
    known = registered(hub, inscrit=True)
    schema = schemathesis.openapi.from_asgi(f"{FEED}/openapi.json", hub.client.app)
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]

        @settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        @given(case=operation.as_strategy(), steer=st.booleans())
        def check(case: schemathesis.Case, steer: bool) -> None:
            if steer and case.path_parameters:
                _steer(case, known)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, excluded_checks=[positive_data_acceptance]
            )

        check()


def _steer(case: schemathesis.Case, known: Person) -> None:
    if case.method.upper() != "PUT":
        case.path_parameters["numeroFranceTravail"] = known.numero
        return
    etat_civil = case.body.get("etatCivil") if isinstance(case.body, dict) else None
    if isinstance(etat_civil, dict):
        person = new_person()
        etat_civil.update(nir=person.nir, dateNaissance=person.naissance)
        case.path_parameters["numeroFranceTravail"] = person.numero
