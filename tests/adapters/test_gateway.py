"""The partner APIs served from a (fake) France Travail through the gateway backend.

Each test drives the real app over HTTP as a département's software would; only France
Travail is played, by pytest-httpx (``gateway_fixtures``).
"""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from audit.models import AuditEvent
from tests.adapters.gateway_fixtures import (
    FT_CLIENT_ID,
    UPSTREAM_REQUEST_ID,
    Gateway,
    gateway,
    json_answer,
)
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import AGENT, INFOS, RDV_SCOPES, RECHERCHE, STATUT

FT = "/partenaire"
PAR_NUMERO = f"{FT}/rechercher-usager/v2/usagers/par-numero-francetravail"
PAR_NIR = f"{FT}/rechercher-usager/v2/usagers/par-datenaissance-et-nir"
FT_INFOS = f"{FT}/informations-administratives/v1/usager"
FT_STATUT = f"{FT}/contrat-usager/v2/contrat"
FT_RDV = f"{FT}/rendez-vous-partenaire/v1/rendez-vous"
# France Travail's jeton: base64 JSON in real life, opaque here.
UPSTREAM_JETON = "eyJ2ZXJzIjoiMC4xIiwidXVpZCI6ImFiYyJ9.UPSTREAM-JETON-CD33"
UPSTREAM_JETON_2 = "eyJ2ZXJzIjoiMC4xIiwidXVpZCI6ImRlZiJ9.UPSTREAM-JETON-CD93"


def s001(jeton: str = UPSTREAM_JETON, top: str = "O") -> httpx.Response:
    return json_answer(
        200, {"codeRetour": "S001", "message": "Usager trouvé", "topIdentiteCertifiee": top, "jetonUsager": jeton}
    )


def usager_resource() -> dict[str, Any]:
    # Shaped like the EMPLOIS mock the contract quotes, with accents to check the decoding.
    return {
        "numeroFranceTravail": GIRONDE.numero,
        "etatCivil": {
            "civilite": "Mme",
            "nom": "LEFÈVRE",
            "prenom": "HÉLÈNE",
            "nomCorrespondance": "LEFÈVRE",
            "prenomCorrespondance": "HÉLÈNE",
            "dateNaissance": GIRONDE.naissance,
            "nir": GIRONDE.nir13,
        },
        "adresses": [
            {
                "codeInseeCommune": "42218",
                "codePostal": "42000",
                "complementAdresse": None,
                "complementDestinataire": None,
                "complementDistribution": None,
                "libelleCommune": "SAINT-ÉTIENNE",
                "libellePays": "FRANCE",
                "numeroTypeLibelleVoie": "3 RUE DE L'ÉGLISE",
                "indicateurResidentQPV": "NQ",
            }
        ],
        "emails": [{"adresseEmail": "helene@example.org"}],
        "telephones": [{"numeroTelephone": "0600000000"}],
    }


def search(hub: Hub, client_id: str = "cd33") -> httpx.Response:
    return hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=hub.headers(hub.token(client_id)),
    )


def relais_jeton(hub: Hub, client_id: str = "cd33") -> str:
    response = search(hub, client_id)
    assert response.status_code == 200, response.text
    return str(response.json()["jetonUsager"])


def events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


class TestForwarding:
    def test_search_then_read_goes_to_france_travail_with_the_agent_and_the_upstream_jeton(
        self, gateway: Gateway
    ) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        upstream.on("GET", FT_INFOS, json_answer(200, usager_resource()))

        response = search(hub)
        assert response.status_code == 200
        body = response.json()
        assert (body["codeRetour"], body["topIdentiteCertifiee"]) == ("S001", "O")
        # The client gets Relais' jeton, never France Travail's.
        assert body["jetonUsager"] != UPSTREAM_JETON and UPSTREAM_JETON not in response.text

        infos = hub.client.get(INFOS, headers=hub.headers(hub.token(), **{"ft-jeton-usager": body["jetonUsager"]}))
        assert infos.status_code == 200
        assert infos.json() == usager_resource()

        (searched,) = upstream.calls(PAR_NUMERO)
        assert json.loads(searched.content) == {"numeroFranceTravail": GIRONDE.numero}
        (read,) = upstream.calls(FT_INFOS)
        for request in (searched, read):
            assert {name: request.headers[name] for name in AGENT} == AGENT
            assert request.headers["authorization"].startswith("Bearer ft-access-")
        assert read.headers["ft-jeton-usager"] == UPSTREAM_JETON
        assert "ft-jeton-usager" not in searched.headers

    def test_search_by_nir_sends_the_nir_and_birth_date(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NIR, s001(top="N"))
        response = hub.client.post(
            f"{RECHERCHE}/par-datenaissance-et-nir",
            json={"nir": GIRONDE.nir, "dateNaissance": GIRONDE.naissance},
            headers=hub.headers(hub.token()),
        )
        assert response.json()["topIdentiteCertifiee"] == "N"
        (request,) = upstream.calls(PAR_NIR)
        assert json.loads(request.content) == {"nir": GIRONDE.nir13, "dateNaissance": GIRONDE.naissance}

    def test_answers_are_read_as_utf8_whatever_charset_they_declare(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        mislabelled = httpx.Response(
            200,
            content=json.dumps(usager_resource(), ensure_ascii=False).encode("utf-8"),
            headers={"content-type": "application/json; charset=ISO-8859-1"},
        )
        upstream.on("GET", FT_INFOS, mislabelled)
        jeton = relais_jeton(hub)
        infos = hub.client.get(INFOS, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert infos.json()["etatCivil"]["nom"] == "LEFÈVRE"
        assert infos.json()["adresses"][0]["libelleCommune"] == "SAINT-ÉTIENNE"

    def test_statut_usager_and_no_data(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        contrat = {"m_statut": "Inscrit", "m_date_effet_statut": "2025-06-28", "m_motif_inscription_lib": "DÉMISSION"}
        upstream.on("GET", FT_STATUT, json_answer(200, {"m_contrat": contrat}), httpx.Response(204))
        headers = hub.headers(hub.token(), **{"ft-jeton-usager": relais_jeton(hub)})
        first = hub.client.get(STATUT, headers=headers)
        assert first.status_code == 200 and first.json() == {"m_contrat": contrat}
        assert hub.client.get(STATUT, headers=headers).status_code == 204

    def test_the_audit_event_says_the_data_came_from_france_travail(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        upstream.on("GET", FT_INFOS, json_answer(200, usager_resource()))
        jeton = relais_jeton(hub)
        hub.client.get(INFOS, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        searched, read = [event for event in events(hub) if event.channel == "partner-api"][-2:]
        for event in (searched, read):
            assert (event.data_origin, event.upstream_request_id) == ("france-travail", UPSTREAM_REQUEST_ID)
            assert event.http_status == 200
        # The same reference names the usager in both events; it is not France Travail's jeton.
        assert searched.usager_id == read.usager_id and searched.usager_id is not None
        assert read.usager_nir_index is not None
        dumped = json.dumps([event.model_dump(mode="json") for event in events(hub)])
        assert UPSTREAM_JETON not in dumped and "LEFÈVRE" not in dumped

    def test_relais_refuses_before_forwarding(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        # A token without the Rechercher usager scopes: Relais' own check answers.
        token = hub.token(scope=RDV_SCOPES)
        response = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": GIRONDE.numero},
            headers=hub.headers(token),
        )
        assert response.status_code == 403
        assert upstream.requests == [] and upstream.token_requests == []


class TestJetonIsolation:
    def test_each_client_gets_its_own_mapping_and_cannot_use_another(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001(UPSTREAM_JETON), s001(UPSTREAM_JETON_2))
        upstream.on("GET", FT_INFOS, json_answer(200, usager_resource()))
        jeton_cd33 = relais_jeton(hub, "cd33")
        jeton_cd93 = relais_jeton(hub, "cd93")
        assert jeton_cd33 != jeton_cd93

        stolen = hub.client.get(INFOS, headers=hub.headers(hub.token("cd93"), **{"ft-jeton-usager": jeton_cd33}))
        assert stolen.status_code == 403
        assert stolen.json()["codeErreur"] == "JETON_USAGER_NON_AUTORISE"
        assert upstream.calls(FT_INFOS) == []

        own = hub.client.get(INFOS, headers=hub.headers(hub.token("cd93"), **{"ft-jeton-usager": jeton_cd93}))
        assert own.status_code == 200
        assert [request.headers["ft-jeton-usager"] for request in upstream.calls(FT_INFOS)] == [UPSTREAM_JETON_2]

    def test_upstream_jetons_are_stored_encrypted_and_bound_to_the_client(self, gateway: Gateway) -> None:
        from adapters.france_travail import jetons
        from adapters.france_travail.models import GatewayJeton

        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        relais_jeton(hub)
        with hub.services.database.session() as session:
            (row,) = session.exec(select(GatewayJeton)).all()
            assert row.client_id == "cd33" and UPSTREAM_JETON not in row.jeton_chiffre
            assert jetons.upstream_jeton(hub.services.keys, row) == UPSTREAM_JETON
            for client_id in ("cd93", "cd33-recherche"):
                try:
                    jetons.recall(session, hub.services.keys, client_id=client_id, ref=row.id, now=hub.clock.now)
                except jetons.JetonInconnu:
                    continue
                raise AssertionError("another client's reference must not open")


class TestUpstreamAnswers:
    def test_codes_retour_of_rechercher_usager_pass_through(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        r002 = {
            "codeRetour": "R002",
            "message": "L'usager n'est pas rattaché à la structure de l'accédant",
            "topIdentiteCertifiee": "null",
            "jetonUsager": "null",
        }
        s003 = {"codeRetour": "S003", "message": "Plusieurs usagers trouvés", "topIdentiteCertifiee": "null"}
        upstream.on("POST", PAR_NUMERO, json_answer(403, r002), json_answer(200, {**s003, "jetonUsager": "null"}))
        first = search(hub)
        assert (first.status_code, first.json()) == (403, r002)
        second = search(hub)
        assert (second.status_code, second.json()["codeRetour"]) == (200, "S003")
        refused = [event for event in events(hub) if event.channel == "partner-api"][-2]
        assert (refused.http_status, refused.reason) == (403, "upstream:403:R002")

    def test_a_4xx_of_a_per_usager_api_passes_through_faithfully(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        erreur = {
            "codeHttp": 400,
            "codeErreur": "ID_NON_RECONNU",
            "message": "Il n'existe pas de rdv pour l'id et l'utilisateur indiqué",
        }
        upstream.on("PUT", FT_RDV, json_answer(400, erreur))
        token = hub.token(scope=f"{RDV_SCOPES} api_rechercher-usagerv2 rechercheusager profil_accedant")
        jeton = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": GIRONDE.numero},
            headers=hub.headers(token),
        ).json()["jetonUsager"]
        rdv = {
            "id": "FT-RDV-1",
            "date": "2030-01-15T10:30:00+01:00",
            "duree": 45,
            "motif": "ACC",
            "statut": "PRIS",
            "modaliteContact": "PHYSIQUE",
            "typeReception": "IND",
            "initiateur": "PARTENAIRE",
            "organisme": {"code": "CD", "emailContact": "insertion@example.org"},
        }
        response = hub.client.put(
            "/partenaire/rendez-vous-partenaire/v1/rendez-vous",
            json=rdv,
            headers=hub.headers(token, **{"ft-jeton-usager": jeton}),
        )
        assert (response.status_code, response.json()) == (400, erreur)
        (forwarded,) = upstream.calls(FT_RDV)
        assert json.loads(forwarded.content) == rdv

    def test_429_is_retried_after_retry_after_then_succeeds(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        busy = httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "2"})
        upstream.on("POST", PAR_NUMERO, busy, busy, s001())
        assert search(hub).json()["codeRetour"] == "S001"
        assert gateway.sleeps == [2.0, 2.0]
        assert len(upstream.calls(PAR_NUMERO)) == 3

    def test_429_gives_up_after_the_bounded_retries_and_tells_when_to_come_back(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        busy = httpx.Response(
            429,
            text="Too Many Requests",
            headers={"Retry-After": "3", "X-Ratelimit-Burst-Capacity-Clientidlimiter": "10"},
        )
        upstream.on("POST", PAR_NUMERO, busy)
        response = search(hub)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["x-ratelimit-burst-capacity-clientidlimiter"] == "10"
        assert gateway.sleeps == [3.0, 3.0, 3.0]
        assert len(upstream.calls(PAR_NUMERO)) == 4

    def test_a_retry_after_longer_than_allowed_is_passed_on_at_once(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "120"}))
        response = search(hub)
        assert (response.status_code, response.headers["retry-after"]) == (429, "120")
        assert gateway.sleeps == []

    def test_timeout_is_r999_on_rechercher_usager(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, httpx.ReadTimeout("upstream too slow"))
        response = search(hub)
        assert response.status_code == 503
        assert response.json()["codeRetour"] == "R999"
        assert events(hub)[-1].reason == "upstream_unavailable:timeout"

    def test_timeout_is_503_on_a_per_usager_api(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        upstream.on("GET", FT_INFOS, httpx.ConnectTimeout("no answer"))
        jeton = relais_jeton(hub)
        response = hub.client.get(INFOS, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert response.status_code == 503
        assert response.json()["codeErreur"] == "SERVICE_INDISPONIBLE"

    def test_a_revoked_access_token_is_renewed_once(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        revoked = json_answer(401, {"error": "invalid_token"})
        upstream.on("POST", PAR_NUMERO, revoked, s001())
        assert search(hub).json()["codeRetour"] == "S001"
        assert [request.headers["authorization"] for request in upstream.calls(PAR_NUMERO)] == [
            "Bearer ft-access-1",
            "Bearer ft-access-2",
        ]


class TestAccessTokens:
    def test_one_token_per_scope_set_reused_across_calls(self, gateway: Gateway) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        upstream.on("POST", PAR_NUMERO, s001())
        upstream.on("GET", FT_INFOS, json_answer(200, usager_resource()))
        jeton = relais_jeton(hub)
        relais_jeton(hub)
        for _ in range(2):
            hub.client.get(INFOS, headers=hub.headers(hub.token(), **{"ft-jeton-usager": jeton}))
        assert len(upstream.token_requests) == 2
        forms = [dict(httpx.QueryParams(request.content.decode())) for request in upstream.token_requests]
        assert {form["scope"] for form in forms} == {
            "api_rechercher-usagerv2 profil_accedant rechercheusager",
            "api_informations-administrativesv1 informationsadministrativesusager",
        }
        assert all(form["grant_type"] == "client_credentials" and form["client_id"] == FT_CLIENT_ID for form in forms)
        assert all(request.url.params["realm"] == "/agent" for request in upstream.token_requests)


class TestOneApplicationPerOrganisation:
    def test_each_organisation_calls_with_its_own_credentials_and_others_are_refused(
        self, gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hub, upstream = gateway.hub, gateway.upstream
        monkeypatch.setenv("FT_SECRET_CD33", "secret-cd33")
        credentials = tmp_path / "ft.json"
        credentials.write_text(json.dumps({"CD33": {"client_id": "PAR_cd33", "client_secret_env": "FT_SECRET_CD33"}}))
        gateway.reconfigure(ft_client_id="", ft_client_secret="", ft_credentials_file=credentials)
        upstream.on("POST", PAR_NUMERO, s001())

        assert search(hub, "cd33").json()["codeRetour"] == "S001"
        (token_request,) = upstream.token_requests
        form = dict(httpx.QueryParams(token_request.content.decode()))
        assert (form["client_id"], form["client_secret"]) == ("PAR_cd33", "secret-cd33")

        refused = search(hub, "cd93")
        assert (refused.status_code, refused.json()["codeRetour"]) == (403, "R001")
        assert len(upstream.calls(PAR_NUMERO)) == 1
        assert events(hub)[-1].reason == "gateway_sans_habilitation"
