"""Rechercher usager v2: the whole codeRetour table, NIR validation and agent headers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.people import CORSE, DOUBLON_A, GIRONDE, GIRONDE_SANS_CONTRAT, RATTACHE_EXPLICITE, SEINE_SAINT_DENIS
from tests.support.scopes import AGENT, RECHERCHE

PAR_NIR = f"{RECHERCHE}/par-datenaissance-et-nir"
PAR_NUMERO = f"{RECHERCHE}/par-numero-francetravail"
RESULTAT_KEYS = {"codeRetour", "message", "topIdentiteCertifiee", "jetonUsager"}


def _post(hub: Hub, url: str, body: Any, client_id: str = "cd33", **headers: str) -> Any:
    merged = {**hub.headers(hub.token(client_id)), **headers}
    return hub.client.post(url, json=body, headers={k: v for k, v in merged.items() if v != "<absent>"})


class TestCodeRetour:
    def test_s001_by_nir_with_key(self, hub: Hub) -> None:
        response = _post(hub, PAR_NIR, {"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir})
        assert response.status_code == 200
        body = response.json()
        assert set(body) == RESULTAT_KEYS
        assert body["codeRetour"] == "S001"
        assert body["message"] == "Usager trouvé"
        assert body["topIdentiteCertifiee"] == "O"
        assert body["jetonUsager"] not in ("", "null")

    def test_s001_by_nir_without_key(self, hub: Hub) -> None:
        response = _post(hub, PAR_NIR, {"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir13})
        assert response.json()["codeRetour"] == "S001"

    def test_s001_by_numero_uncertified_identity(self, hub: Hub) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": GIRONDE_SANS_CONTRAT.numero})
        assert response.status_code == 200
        assert response.json()["codeRetour"] == "S001"
        assert response.json()["topIdentiteCertifiee"] == "N"

    def test_s001_for_corsican_nir(self, hub: Hub) -> None:
        response = _post(hub, PAR_NIR, {"dateNaissance": CORSE.naissance, "nir": CORSE.nir}, client_id="cd33")
        # Corse-du-Sud is not Gironde's territory: found, but not attached.
        assert response.status_code == 403
        assert response.json()["codeRetour"] == "R002"

    def test_explicit_attachment_outside_territory(self, hub: Hub) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": RATTACHE_EXPLICITE.numero})
        assert response.json()["codeRetour"] == "S001"

    def test_s002_nobody(self, hub: Hub) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": "19999999999"})
        assert response.status_code == 200
        assert response.json() == {
            "codeRetour": "S002",
            "message": "Aucun usager trouvé",
            "topIdentiteCertifiee": "null",
            "jetonUsager": "null",
        }

    def test_s002_wrong_birth_date(self, hub: Hub) -> None:
        response = _post(hub, PAR_NIR, {"dateNaissance": "1985-07-15", "nir": GIRONDE.nir})
        assert response.json()["codeRetour"] == "S002"

    def test_s003_several(self, hub: Hub) -> None:
        response = _post(hub, PAR_NIR, {"dateNaissance": DOUBLON_A.naissance, "nir": DOUBLON_A.nir})
        assert response.status_code == 200
        assert response.json() == {
            "codeRetour": "S003",
            "message": "Plusieurs usagers trouvés",
            "topIdentiteCertifiee": "null",
            "jetonUsager": "null",
        }

    def test_r002_not_attached(self, hub: Hub) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": SEINE_SAINT_DENIS.numero})
        assert response.status_code == 403
        assert response.json() == {
            "codeRetour": "R002",
            "message": "L'usager n'est pas rattaché à la structure de l'accédant",
            "topIdentiteCertifiee": "null",
            "jetonUsager": "null",
        }

    def test_other_departement_finds_its_own(self, hub: Hub) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": SEINE_SAINT_DENIS.numero}, client_id="cd93")
        assert response.json()["codeRetour"] == "S001"

    def test_r001_missing_scope(self, hub: Hub) -> None:
        token = hub.token(scope="api_contrat-usagerv2 statutcontratusager profil_accedant")
        response = hub.client.post(PAR_NUMERO, json={"numeroFranceTravail": GIRONDE.numero}, headers=hub.headers(token))
        assert response.status_code == 403
        assert response.json()["codeRetour"] == "R001"
        assert response.json()["message"] == "Accès non autorisé"


class TestR997Validation:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir13[:-1] + "9" + "00"}, "NIR"),
            ({"dateNaissance": GIRONDE.naissance, "nir": "185073306300"}, "nir"),
            ({"dateNaissance": GIRONDE.naissance, "nir": "5850733063001"}, "NIR"),
            ({"dateNaissance": GIRONDE.naissance}, "nir"),
            ({"nir": GIRONDE.nir}, "dateNaissance"),
            ({"dateNaissance": "14/07/1985", "nir": GIRONDE.nir}, "dateNaissance"),
            ({"dateNaissance": "1985-02-30", "nir": GIRONDE.nir}, "dateNaissance"),
        ],
    )
    def test_bad_search_by_nir(self, hub: Hub, body: dict[str, str], field: str) -> None:
        response = _post(hub, PAR_NIR, body)
        assert response.status_code == 400
        payload = response.json()
        assert payload["codeRetour"] == "R997"
        assert payload["message"].startswith("Une erreur de validation s'est produite")
        assert field in payload["message"]
        assert payload["jetonUsager"] == "null"
        assert GIRONDE.nir13 not in response.text

    def test_unknown_fields_are_ignored_as_france_travail_does(self, hub: Hub) -> None:
        # FT's OpenAPI (recherche_usager_openapi_v2.json) does not forbid additional properties.
        response = _post(hub, PAR_NIR, {"dateNaissance": GIRONDE.naissance, "nir": GIRONDE.nir, "nom": "X"})
        assert response.status_code == 200, response.text
        assert response.json()["codeRetour"] == "S001"

    @pytest.mark.parametrize("numero", ["1234567890", "123456789012", "1234567890A", ""])
    def test_bad_numero(self, hub: Hub, numero: str) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": numero})
        assert response.status_code == 400
        assert response.json()["codeRetour"] == "R997"
        assert "numeroFranceTravail" in response.json()["message"]

    def test_body_not_json(self, hub: Hub) -> None:
        response = hub.client.post(
            PAR_NUMERO,
            content=b"{not json",
            headers={**hub.headers(hub.token()), "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json()["codeRetour"] == "R997"


class TestAgentHeaders:
    @pytest.mark.parametrize("header", list(AGENT))
    def test_missing(self, hub: Hub, header: str) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": GIRONDE.numero}, **{header: "<absent>"})
        assert response.status_code == 400
        assert response.json()["codeRetour"] == "R997"
        assert f"en-tête {header} absent" in response.json()["message"]

    @pytest.mark.parametrize("header", list(AGENT))
    def test_empty(self, hub: Hub, header: str) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": GIRONDE.numero}, **{header: ""})
        assert response.status_code == 400
        assert header in response.json()["message"]

    @pytest.mark.parametrize("header", list(AGENT))
    def test_pipe_is_forbidden(self, hub: Hub, header: str) -> None:
        response = _post(hub, PAR_NUMERO, {"numeroFranceTravail": GIRONDE.numero}, **{header: "DUPONT|JEAN"})
        assert response.status_code == 400
        assert "le caractère | est interdit" in response.json()["message"]

    def test_batch_identity_is_accepted(self, hub: Hub) -> None:
        response = _post(
            hub,
            PAR_NUMERO,
            {"numeroFranceTravail": GIRONDE.numero},
            **{
                "pa-nom-agent": "Traitement nuit",
                "pa-prenom-agent": "Orientations",
                "pa-identifiant-agent": "BATCH",
            },
        )
        assert response.json()["codeRetour"] == "S001"
