"""Diagnostic argumenté v4 through the gateway: the three calls reach France Travail as its
collection sends them (paths, upstream jeton, the API's own scope set) and its answers come
back unchanged."""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

import json

import httpx

from tests.adapters.gateway_fixtures import Gateway, gateway, json_answer
from tests.adapters.test_gateway import PAR_NUMERO, UPSTREAM_JETON, s001
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import DIAGNOSTIC_SCOPES, RECHERCHE, RECHERCHE_SCOPES

FT_DIAGNOSTICS = "/partenaire/diagnosticargumente/v4/diagnostics"
DIAGNOSTIC = {
    "idDiagnostic": "c4851c54-8912-4548-91a6-29c2f4fa6163",
    "idMetierChiffre": "23ad783f-1156-4208-a7c4-2433ff6109ec#IL8Oa",
    "nomMetier": "Aide ménager / Aide ménagère à domicile",
    "typologie": "métier recherché",
    "codeTypologie": "MR",
    "codeSousTypologie": None,
    "codeRome": "K1304",
    "codeAppellation": "10857",
    "statut": "EN_COURS",
    "estPrioritaire": False,
    "agent": {"id": "ertc8250", "nom": "Dupont", "prenom": "Fernande", "structure": "CD 33"},
    "dateMiseAJour": "2022-12-09T01:00:00.000+02:00",
    "dateMiseAJourProjet": None,
    "estCreationPartenaire": True,
}
BODY = {"codeAppellation": "10857", "codeRome": "K1304", "codeSousTypologie": None, "codeTypologie": "MR"}


def headers_for(hub: Hub) -> dict[str, str]:
    token = hub.token(scope=f"{RECHERCHE_SCOPES} {DIAGNOSTIC_SCOPES}")
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=hub.headers(token),
    )
    return hub.headers(token, **{"ft-jeton-usager": str(response.json()["jetonUsager"])})


def test_read_create_delete_are_forwarded_with_the_upstream_jeton(gateway: Gateway) -> None:
    hub, upstream = gateway.hub, gateway.upstream
    upstream.on("POST", PAR_NUMERO, s001())
    upstream.on("GET", FT_DIAGNOSTICS, json_answer(200, {"diagnostics": [DIAGNOSTIC]}))
    upstream.on("POST", FT_DIAGNOSTICS, json_answer(200, DIAGNOSTIC))
    upstream.on("DELETE", f"{FT_DIAGNOSTICS}/{DIAGNOSTIC['idDiagnostic']}/supprime", httpx.Response(200))
    headers = headers_for(hub)

    listing = hub.client.get(FT_DIAGNOSTICS, headers=headers)
    assert (listing.status_code, listing.json()) == (200, {"diagnostics": [DIAGNOSTIC]})
    created = hub.client.post(FT_DIAGNOSTICS, json=BODY, headers=headers)
    assert (created.status_code, created.json()) == (200, DIAGNOSTIC)
    deleted = hub.client.delete(f"{FT_DIAGNOSTICS}/{DIAGNOSTIC['idDiagnostic']}/supprime", headers=headers)
    assert deleted.status_code == 200

    (sent,) = upstream.calls(FT_DIAGNOSTICS)[1:]
    assert json.loads(sent.content) == BODY
    forwarded = [r for r in upstream.requests if r.url.path.startswith(FT_DIAGNOSTICS)]
    assert [r.method for r in forwarded] == ["GET", "POST", "DELETE"]
    assert {r.headers["ft-jeton-usager"] for r in forwarded} == {UPSTREAM_JETON}
    assert {r.headers["pa-identifiant-agent"] for r in forwarded} == {"AGT-0042"}
    # One token for the diagnostic calls, with exactly this API's scope set.
    scopes = {dict(httpx.QueryParams(request.content.decode()))["scope"] for request in upstream.token_requests}
    assert any(set(scope.split()) == set(DIAGNOSTIC_SCOPES.split()) for scope in scopes), scopes


def test_france_travail_s_refusal_comes_back_as_sent(gateway: Gateway) -> None:
    hub, upstream = gateway.hub, gateway.upstream
    upstream.on("POST", PAR_NUMERO, s001())
    refus = {"codeHttp": 404, "codeErreur": "NON_TROUVE", "message": "Diagnostic introuvable"}
    upstream.on("DELETE", f"{FT_DIAGNOSTICS}/inconnu/supprime", json_answer(404, refus))
    response = hub.client.delete(f"{FT_DIAGNOSTICS}/inconnu/supprime", headers=headers_for(hub))
    assert (response.status_code, response.json()) == (404, refus)
    refused = hub.client.delete(f"{FT_DIAGNOSTICS}/../supprime", headers=headers_for(hub))
    assert refused.status_code in (400, 404)
    assert not [r for r in upstream.requests if r.url.path.endswith("/../supprime")]
