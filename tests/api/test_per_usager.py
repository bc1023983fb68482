"""Informations administratives v1 and Statut usager v2, and every way a jeton is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from parcours.tables import Usager, UsagerOrganisation
from relais.core.tables import Organisation
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT, RATTACHE_EXPLICITE
from tests.support.scopes import INFOS, INFOS_SCOPES, STATUT

PER_USAGER = [INFOS, STATUT]


class TestInformationsAdministratives:
    def test_returns_the_usager_resource(self, hub: Hub) -> None:
        jeton = hub.jeton(GIRONDE)
        response = hub.client.get(INFOS, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert response.status_code == 200
        body = response.json()
        assert body["numeroFranceTravail"] == GIRONDE.numero
        assert body["etatCivil"]["nir"] == GIRONDE.nir13
        assert body["etatCivil"]["dateNaissance"] == GIRONDE.naissance
        assert set(body["etatCivil"]) == {
            "civilite",
            "nom",
            "prenom",
            "nomCorrespondance",
            "prenomCorrespondance",
            "dateNaissance",
            "nir",
        }
        assert body["adresses"][0]["codeInseeCommune"] == "33063"
        assert body["emails"][0]["adresseEmail"]
        assert body["telephones"][0]["numeroTelephone"]


class TestStatutUsager:
    def test_returns_m_contrat(self, hub: Hub) -> None:
        jeton = hub.jeton(GIRONDE)
        response = hub.client.get(STATUT, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert response.status_code == 200
        contrat = response.json()["m_contrat"]
        assert contrat["m_statut"] == "Inscrit"
        assert contrat["m_duree_inscription_12"] == 9
        assert contrat["m_categ_inscription_code"] == "1"

    def test_204_when_no_registration(self, hub: Hub) -> None:
        jeton = hub.jeton(GIRONDE_SANS_CONTRAT)
        response = hub.client.get(STATUT, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert response.status_code == 204
        assert response.content == b""


@pytest.mark.parametrize("url", PER_USAGER)
class TestJetonRefusals:
    def test_missing_jeton_is_401(self, hub: Hub, url: str) -> None:
        response = hub.client.get(url, headers=hub.headers(hub.token()))
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_ABSENT"

    def test_garbage_jeton_is_401(self, hub: Hub, url: str) -> None:
        response = hub.client.get(url, headers=hub.headers(hub.token(), **{"ft-jeton-usager": "abc.def"}))
        assert response.status_code == 401
        assert response.json() == {
            "codeHttp": 401,
            "codeErreur": "JETON_USAGER_INVALIDE",
            "message": "Jeton usager invalide",
        }

    def test_tampered_jeton_is_401(self, hub: Hub, url: str) -> None:
        jeton = hub.jeton(GIRONDE)
        middle = len(jeton) // 2
        tampered = jeton[:middle] + ("A" if jeton[middle] != "A" else "B") + jeton[middle + 1 :]
        response = hub.client.get(url, headers=hub.headers(hub.token(), **{"ft-jeton-usager": tampered}))
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_INVALIDE"

    def test_expired_jeton_is_401(self, hub: Hub, url: str) -> None:
        jeton = hub.jeton(GIRONDE)
        hub.clock.now += timedelta(hours=24, seconds=1)
        response = hub.client.get(url, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_EXPIRE"

    def test_jeton_of_another_client_is_403(self, hub: Hub, url: str) -> None:
        jeton = hub.jeton(RATTACHE_EXPLICITE, client_id="cd93")
        response = hub.client.get(url, headers=hub.headers(hub.token("cd33"), **{"ft-jeton-usager": jeton}))
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "JETON_USAGER_NON_AUTORISE"

    def test_detached_usager_is_403_even_with_a_live_jeton(self, hub: Hub, url: str) -> None:
        jeton = hub.jeton(RATTACHE_EXPLICITE)
        with hub.services.database.transaction() as session:
            usager = session.exec(select(Usager).where(Usager.numero_france_travail == RATTACHE_EXPLICITE.numero)).one()
            cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
            session.delete(session.get(UsagerOrganisation, (usager.id, cd33.id)))
        response = hub.client.get(url, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "USAGER_NON_RATTACHE"

    def test_jeton_never_echoed(self, hub: Hub, url: str) -> None:
        jeton = hub.jeton(GIRONDE)
        bad = jeton + "x"
        response = hub.client.get(url, headers=hub.headers(hub.token(), **{"ft-jeton-usager": bad}))
        assert jeton not in response.text

    def test_agent_headers_required(self, hub: Hub, url: str) -> None:
        headers = hub.headers(hub.token(), **{"ft-jeton-usager": hub.jeton(GIRONDE)})
        del headers["pa-identifiant-agent"]
        response = hub.client.get(url, headers=headers)
        assert response.status_code == 400
        assert response.json()["codeErreur"] == "REQUETE_INVALIDE"
        assert "pa-identifiant-agent" in response.json()["message"]


class TestScopeDenial:
    def test_statut_needs_its_own_scopes(self, hub: Hub) -> None:
        jeton = hub.jeton(GIRONDE)
        token = hub.token(scope=INFOS_SCOPES)
        response = hub.client.get(STATUT, headers=hub.headers(token, **{"ft-jeton-usager": jeton}))
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "ACCES_NON_AUTORISE"
        allowed = hub.client.get(INFOS, headers=hub.headers(token, **{"ft-jeton-usager": jeton}))
        assert allowed.status_code == 200

    def test_client_without_scope_cannot_get_a_token_for_it(self, hub: Hub) -> None:
        response = hub.client.post(
            "/connexion/oauth2/access_token?realm=/agent",
            data={
                "grant_type": "client_credentials",
                "client_id": "cd33-recherche",
                "client_secret": "s3cret-for-tests-only-0123456789",
                "scope": INFOS_SCOPES,
            },
        )
        assert response.json()["error"] == "invalid_scope"
