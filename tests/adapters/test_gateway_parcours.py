"""The parcours APIs through the gateway: activités (v1 and v2 from France Travail's v2),
sanctions with their codeSortie, rendez-vous cancellation."""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.adapters.gateway_fixtures import Gateway, gateway, json_answer
from tests.adapters.test_gateway import PAR_NUMERO, s001
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import (
    ACTIVITES_V1_SCOPES,
    ACTIVITES_V2_SCOPES,
    RDV_SCOPES,
    RECHERCHE,
    RECHERCHE_SCOPES,
    SANCTIONS_SCOPES,
)

FT_ACTIVITES = "/partenaire/activites-operationnelles/v2/activites/chercher"
FT_EVENEMENT = "/partenaire/gestion-sanctions-rsa/v1/evenementSanctionRSA"


def activite(code: str = "ACT366", sanction: str = "FT-S-0001") -> dict[str, Any]:
    return {
        "identifiantActivite": "a1b2c3",
        "codeActivite": code,
        "usager": {"identifiant": GIRONDE.numero, "typeIdentifiant": "numeroFranceTravail"},
        "dateCreation": "2026-01-05T09:30:00Z",  # java.time.Instant, as FT's Activite class
        "dateEcheance": "2026-02-04T00:00:00Z",
        "attributsSpecifiques": [{"nom": "identifiantConsequenceSanction", "valeur": sanction}],
    }


def jeton_for(hub: Hub, scopes: str) -> tuple[str, str]:
    token = hub.token(scope=f"{RECHERCHE_SCOPES} {scopes}")
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=hub.headers(token),
    )
    return token, str(response.json()["jetonUsager"])


def test_activites_v2_pages_with_france_travail_s_cursor(gateway: Gateway) -> None:
    hub, upstream = gateway.hub, gateway.upstream
    upstream.on(
        "GET",
        FT_ACTIVITES,
        json_answer(200, {"activites": [activite()], "cursor": "FT-CURSOR-2"}),
        httpx.Response(204),
    )
    headers = hub.headers(hub.token(scope=ACTIVITES_V2_SCOPES))
    url = "/partenaire/activites-operationnelles/v2/activites/chercher"
    first = hub.client.get(url, params={"codeFamille": "GLI100"}, headers=headers)
    assert first.status_code == 200
    assert first.json() == {"activites": [activite()], "cursor": "FT-CURSOR-2"}
    second = hub.client.get(url, params={"codeFamille": "GLI100", "cursor": "FT-CURSOR-2"}, headers=headers)
    assert second.status_code == 204
    sent = [dict(request.url.params) for request in upstream.calls(FT_ACTIVITES)]
    assert sent == [{"codeFamille": "GLI100"}, {"codeFamille": "GLI100", "cursor": "FT-CURSOR-2"}]


def test_activites_v1_is_served_from_v2_with_v1_names(gateway: Gateway) -> None:
    hub, upstream = gateway.hub, gateway.upstream
    upstream.on("GET", FT_ACTIVITES, json_answer(200, {"activites": [activite()]}))
    response = hub.client.get(
        "/partenaire/activites-operationnelles/v1/activites/chercher",
        headers=hub.headers(hub.token(scope=ACTIVITES_V1_SCOPES)),
    )
    assert response.status_code == 200
    assert response.json()[0]["attributsSpecifiques"] == [{"nom": "idConsequenceSanction", "valeur": "FT-S-0001"}]


def test_an_activites_400_keeps_its_array_shape(gateway: Gateway) -> None:
    hub, upstream = gateway.hub, gateway.upstream
    erreurs = [{"code": "CURSEUR_INVALIDE", "message": "Curseur invalide", "details": None}]
    upstream.on("GET", FT_ACTIVITES, json_answer(400, erreurs))
    response = hub.client.get(
        "/partenaire/activites-operationnelles/v2/activites/chercher",
        params={"cursor": "stale"},
        headers=hub.headers(hub.token(scope=ACTIVITES_V2_SCOPES)),
    )
    assert (response.status_code, response.json()) == (400, erreurs)


def test_sanctions_code_sortie_passes_through(gateway: Gateway) -> None:
    hub, upstream = gateway.hub, gateway.upstream
    upstream.on("POST", PAR_NUMERO, s001())
    refus = {
        "codeSortie": "C003",
        "codeHttp": 409,
        "codeErreur": "EVENEMENT_NON_AUTORISE",
        "message": "Événement non autorisé",
    }
    upstream.on("POST", FT_EVENEMENT, json_answer(409, refus))
    token, jeton = jeton_for(hub, SANCTIONS_SCOPES)
    body = {
        "identifiantConsequenceSanction": "FT-S-0001",
        "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": "2026-03-02"},
    }
    response = hub.client.post(
        "/partenaire/gestion-sanctions-rsa/v1/evenementSanctionRSA",
        json=body,
        headers=hub.headers(token, **{"ft-jeton-usager": jeton}),
    )
    assert (response.status_code, response.json()) == (409, refus)
    (sent,) = upstream.calls(FT_EVENEMENT)
    assert json.loads(sent.content) == body
    # The token for this call carried the sanctions scopes only.
    scopes = {dict(httpx.QueryParams(request.content.decode()))["scope"] for request in upstream.token_requests}
    assert "api_gestion-sanctions-rsav1 gestiondesmanquements" in scopes


def test_cancelling_a_rendez_vous_quotes_its_id(gateway: Gateway) -> None:
    hub, upstream = gateway.hub, gateway.upstream
    upstream.on("POST", PAR_NUMERO, s001())
    upstream.on("DELETE", "/partenaire/rendez-vous-partenaire/v1/rendez-vous/RDV 1", httpx.Response(204))
    token, jeton = jeton_for(hub, RDV_SCOPES)
    headers = hub.headers(token, **{"ft-jeton-usager": jeton})
    response = hub.client.delete("/partenaire/rendez-vous-partenaire/v1/rendez-vous/RDV%201", headers=headers)
    assert response.status_code == 204
    (sent,) = upstream.requests[-1:]
    assert sent.url.raw_path == b"/partenaire/rendez-vous-partenaire/v1/rendez-vous/RDV%201"
    refused = hub.client.delete("/partenaire/rendez-vous-partenaire/v1/rendez-vous/..", headers=headers)
    assert refused.status_code in (400, 404)
    assert len(upstream.requests) == 2
