"""What the gateway sends France Travail, for every operation it forwards.

A fake that answers whatever it is asked cannot tell a well-formed call from a broken one (a
JSON body without its ``Content-Type`` went unnoticed that way). So each partner operation is
called here as a département's software would, with a few headers of its own that France
Travail must never see, and the request that reached the (pytest-httpx) platform is checked
whole: method, path, query, ``Content-Type``, ``Accept``, the ``pa-*`` headers, the jeton, the
body, and no header beyond those the contract names.
"""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.adapters.gateway_fixtures import Gateway, gateway, operation_of, partner_routes
from tests.adapters.test_gateway import PAR_NUMERO, UPSTREAM_JETON, s001
from tests.support.people import GIRONDE
from tests.support.scopes import AGENT, ALL_SCOPES, RECHERCHE

P = "/partenaire"
ORIENTATION = f"{P}/orientationusager/v1"
RDV = f"{P}/rendez-vous-partenaire/v1"
CONTRAT = f"{P}/contrat-engagement/v1"
SANCTIONS = f"{P}/gestion-sanctions-rsa/v1"
DIAGNOSTICS = f"{P}/diagnosticargumente/v4/diagnostics"
JSON_UTF8 = "application/json; charset=utf-8"
# Headers the transport itself adds (httpx); anything else must be one the contract names.
TRANSPORT_HEADERS = {"host", "user-agent", "accept-encoding", "connection", "content-length"}
CONTRACT_HEADERS = {"authorization", "accept", "content-type", "ft-jeton-usager", *AGENT}
# What a caller's software may well send; none of it is Relais' to pass on.
CALLER_EXTRAS = {
    "X-Forwarded-For": "203.0.113.7",
    "Cookie": "session=editor-cookie",
    "X-Editeur-Trace": "trace-123",
    "User-Agent": "logiciel-editeur/4.2",
}

RDV_BODY: dict[str, Any] = {
    "id": None,
    "date": "2030-01-15T10:30:00+01:00",
    "duree": 45,
    "motif": "ACC",
    "statut": "PRIS",
    "modaliteContact": "PHYSIQUE",
    "typeReception": "IND",
    "initiateur": "PARTENAIRE",
    "organisme": {"code": "CD", "emailContact": "insertion@example.org"},
}
CRITERES: dict[str, Any] = {
    "brsa": True,
    "date_naissance": "1990-04-12",
    "adresse": {"code_commune": "33063", "libelle_commune": "BORDEAUX", "code_postal": "33000"},
    "type_emploi": "AUTRE",
}
DECISION_SANCTION: dict[str, Any] = {
    "identifiantConsequenceSanction": "FT-S-0001",
    "dateNotificationDecisionSanction": "2026-01-20",
    "natureManquement": "N65",
    "rangManquement": "R2",
    "typeSanctionValide": "SUSP_RSA",
    "modaliteDecisionValidee": "P",
    "montantValide": 50,
    "dureeValidee": 4,
}


@dataclass(frozen=True)
class Operation:
    """A partner call and the France Travail request it must become."""

    method: str
    path: str
    upstream_method: str
    upstream_path: str
    # None: not a per-usager call, no jeton sent either way.
    per_usager: bool = True
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    # The query France Travail gets (the same as the caller's unless said otherwise).
    upstream_params: dict[str, str] | None = None
    # The body France Travail gets (the caller's unless said otherwise).
    upstream_body: dict[str, Any] | None = None


# By the operationId the call serves (checked against the specs below).
OPERATIONS: dict[str, Operation] = {
    "RechercherUsagerParNumeroFranceTravail": Operation(
        "POST",
        f"{RECHERCHE}/par-numero-francetravail",
        "POST",
        PAR_NUMERO,
        per_usager=False,
        body={"numeroFranceTravail": GIRONDE.numero},
    ),
    "RechercherUsagerParDateNaissanceEtNir": Operation(
        "POST",
        f"{RECHERCHE}/par-datenaissance-et-nir",
        "POST",
        f"{P}/rechercher-usager/v2/usagers/par-datenaissance-et-nir",
        per_usager=False,
        body={"nir": GIRONDE.nir, "dateNaissance": GIRONDE.naissance},
        # France Travail takes the 13-character NIR (the key is Relais' check, not sent).
        upstream_body={"nir": GIRONDE.nir13, "dateNaissance": GIRONDE.naissance},
    ),
    "recupererDonneesParIdRci": Operation(
        "GET", f"{P}/informations-administratives/v1/usager", "GET", f"{P}/informations-administratives/v1/usager"
    ),
    "recupererContratV2": Operation("GET", f"{P}/contrat-usager/v2/contrat", "GET", f"{P}/contrat-usager/v2/contrat"),
    "chercherActivitesV2": Operation(
        "GET",
        f"{P}/activites-operationnelles/v2/activites/chercher",
        "GET",
        f"{P}/activites-operationnelles/v2/activites/chercher",
        per_usager=False,
        params={"codeActivite": "ACT380", "cursor": "FT-CURSOR-2"},
    ),
    "chercherActivites": Operation(
        "GET",
        f"{P}/activites-operationnelles/v1/activites/chercher",
        "GET",
        f"{P}/activites-operationnelles/v2/activites/chercher",
        per_usager=False,
        params={"codeFamille": "GLI100"},
    ),
    "lectureOrientation": Operation(
        "GET",
        f"{ORIENTATION}/lectureOrientation",
        "GET",
        f"{ORIENTATION}/lectureOrientation",
        params={"etatOrientation": "EN_ATTENTE"},
    ),
    "calculOrientation": Operation(
        "POST", f"{ORIENTATION}/calculOrientation", "POST", f"{ORIENTATION}/calculOrientation", body=CRITERES
    ),
    "decisionOrientation": Operation(
        "POST",
        f"{ORIENTATION}/decisionOrientation",
        "POST",
        f"{ORIENTATION}/decisionOrientation",
        body={"etat_decision": "ACCEPTEE", "date_decision": "2026-03-02", "agent_decision": "Claire Martin"},
    ),
    "orientation": Operation(
        "POST",
        f"{ORIENTATION}/orientation",
        "POST",
        f"{ORIENTATION}/orientation",
        body={"parcours": "PED", "organisme": "FT"},
    ),
    "creerRendezVous": Operation("POST", f"{RDV}/rendez-vous", "POST", f"{RDV}/rendez-vous", body=RDV_BODY),
    "modifierRendezVous": Operation(
        "PUT", f"{RDV}/rendez-vous", "PUT", f"{RDV}/rendez-vous", body={**RDV_BODY, "id": "RDV-42", "duree": 60}
    ),
    "supprimerRendezVous": Operation("DELETE", f"{RDV}/rendez-vous/RDV%2042", "DELETE", f"{RDV}/rendez-vous/RDV%2042"),
    "consulterRendezVousUsager": Operation("GET", f"{RDV}/rendez-vous-usager", "GET", f"{RDV}/rendez-vous-usager"),
    "lireContratEngagement": Operation("GET", f"{CONTRAT}/lecture", "GET", f"{CONTRAT}/lecture"),
    "signerPremierContratEngagement": Operation(
        "POST", f"{CONTRAT}/signer", "POST", f"{CONTRAT}/signer", body={"dateSignature": "2026-03-02T10:00:00+01:00"}
    ),
    "refuserPremierContratEngagement": Operation(
        "POST", f"{CONTRAT}/refuser", "POST", f"{CONTRAT}/refuser", body={"dateRefus": "2026-03-02T10:00:00+01:00"}
    ),
    "signerContratEngagement": Operation(
        "PATCH", f"{CONTRAT}/signer", "PATCH", f"{CONTRAT}/signer", body={"dateSignature": "2026-03-02T10:00:00+01:00"}
    ),
    "refuserContratEngagement": Operation(
        "PATCH", f"{CONTRAT}/refuser", "PATCH", f"{CONTRAT}/refuser", body={"dateRefus": "2026-03-02T10:00:00+01:00"}
    ),
    "lireDetailSanctionRsa": Operation(
        "GET",
        f"{SANCTIONS}/detailManquement",
        "GET",
        f"{SANCTIONS}/detailManquement",
        params={"identifiantSanction": "FT-S-0001"},
    ),
    "traiterSanctionRsa": Operation(
        "POST",
        f"{SANCTIONS}/evenementSanctionRSA",
        "POST",
        f"{SANCTIONS}/evenementSanctionRSA",
        body={
            "identifiantConsequenceSanction": "FT-S-0001",
            "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": "2026-03-02"},
        },
    ),
    "traiterDecisionSanctionRSA": Operation(
        "POST",
        f"{SANCTIONS}/decisionSanctionRSAPartenaire",
        "POST",
        f"{SANCTIONS}/decisionSanctionRSAPartenaire",
        body=DECISION_SANCTION,
    ),
    "recupererDiagnostics": Operation("GET", DIAGNOSTICS, "GET", DIAGNOSTICS),
    "creerDiagnostic": Operation("POST", DIAGNOSTICS, "POST", DIAGNOSTICS, body={"codeTypologie": "MR"}),
    "supprimerDiagnostic": Operation(
        "DELETE", f"{DIAGNOSTICS}/DIAG%2042/supprime", "DELETE", f"{DIAGNOSTICS}/DIAG%2042/supprime"
    ),
    "demandeRadiation": Operation(
        "POST",
        f"{SANCTIONS}/demandeRadiation",
        "POST",
        f"{SANCTIONS}/demandeRadiation",
        body={"identifiantConsequenceSanction": "FT-S-0001"},
    ),
}


def sent_for(gateway: Gateway, operation: Operation) -> httpx.Request:
    """Call ``operation`` through the gateway; the one request France Travail received for it."""
    hub, upstream = gateway.hub, gateway.upstream
    upstream.on("POST", PAR_NUMERO, s001())
    token = hub.token(scope=" ".join(ALL_SCOPES))
    headers = hub.headers(token, **CALLER_EXTRAS)
    if operation.per_usager:
        found = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": GIRONDE.numero}, headers=headers
        )
        assert found.status_code == 200, found.text
        headers["ft-jeton-usager"] = found.json()["jetonUsager"]
    upstream.requests.clear()
    # Unprogrammed, the platform answers 404 in its format: what matters here is what was sent.
    hub.client.request(operation.method, operation.path, params=operation.params, json=operation.body, headers=headers)
    expected = (operation.upstream_method, operation.upstream_path)
    requests = [request for request in upstream.requests if (request.method, raw_path(request)) == expected]
    assert len(requests) == 1, [(request.method, raw_path(request)) for request in upstream.requests]
    return requests[0]


def raw_path(request: httpx.Request) -> str:
    """The path as sent, still quoted (an identifier with a space or a slash stays one segment)."""
    return request.url.raw_path.split(b"?")[0].decode()


def test_every_partner_operation_of_the_specs_has_its_request_shape() -> None:
    # An operation added to a contract without a shape here fails this test, not silently.
    missing = sorted(set(partner_routes()) - set(OPERATIONS))
    assert not missing, f"operations without a request-shape assertion: {missing}"
    assert len(OPERATIONS) == len(partner_routes()) >= 26
    # Each entry calls the operation it is named after (its method and path, in the specs).
    assert {name: operation_of(op.method, op.path) for name, op in OPERATIONS.items()} == {
        name: name for name in OPERATIONS
    }


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_forwarded_call_has_the_shape_the_contract_names(gateway: Gateway, name: str) -> None:
    operation = OPERATIONS[name]
    request = sent_for(gateway, operation)

    assert request.method == operation.upstream_method
    assert dict(request.url.params) == (operation.upstream_params or operation.params)
    assert request.headers["accept"] == "application/json"
    assert request.headers["authorization"].startswith("Bearer ft-access-")
    assert {name: request.headers.get(name) for name in AGENT} == AGENT
    # The caller's Relais jeton is never sent: France Travail's own, kept by the gateway, is.
    assert request.headers.get("ft-jeton-usager") == (UPSTREAM_JETON if operation.per_usager else None)
    if operation.body is None:
        assert "content-type" not in request.headers
        assert request.content == b""
    else:
        assert request.headers["content-type"] == JSON_UTF8
        assert json.loads(request.content.decode("utf-8")) == (operation.upstream_body or operation.body)
    # Exactly the headers the contract names: nothing of the caller's leaks through.
    assert set(request.headers) <= CONTRACT_HEADERS | TRANSPORT_HEADERS, set(request.headers)
    assert "logiciel-editeur" not in request.headers.get("user-agent", "")
    assert all(value not in str(request.headers) for value in CALLER_EXTRAS.values())


def test_a_body_with_non_ascii_text_is_sent_as_utf8(gateway: Gateway) -> None:
    operation = OPERATIONS["creerRendezVous"]
    body = {**RDV_BODY, "information": "Munissez-vous d'une pièce d'identité — merci"}
    request = sent_for(gateway, Operation(**{**operation.__dict__, "body": body}))
    assert request.headers["content-type"] == JSON_UTF8
    assert "pièce d'identité — merci".encode() in request.content
