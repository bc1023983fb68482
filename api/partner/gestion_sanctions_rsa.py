"""Gestion des sanctions RSA v1: detailManquement, evenementSanctionRSA, decisionSanctionRSAPartenaire,
demandeRadiation.

Every answer carries the contract's ``codeSortie`` (C001 on success). A refusal is a 4xx whose
body carries both ``codeSortie`` and the per-usager APIs' ``{codeHttp, codeErreur, message}``,
so that a client checking either stops (choix Relais, documented in the spec).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.errors import json_response
from api.partner.per_usager import for_usager
from parcours import sanctions as domain
from parcours.ports import Caller, Refused, SanctionsBackend, UsagerData

# codeSortie -> (HTTP status, short name used as ``codeErreur``).
SORTIES: Mapping[str, tuple[int, str]] = {
    domain.C_INCONNUE: (404, "CONSEQUENCE_INCONNUE"),
    domain.C_ETAT: (409, "EVENEMENT_NON_AUTORISE"),
    domain.C_OBLIGATOIRE: (400, "DONNEE_OBLIGATOIRE_ABSENTE"),
    domain.C_VALEUR: (400, "VALEUR_NON_CONFORME"),
    domain.C_CONFLIT: (409, "CONFLIT_MODIFICATION"),
    domain.C_ORGANISATION: (403, "ORGANISATION_NON_HABILITEE"),
    domain.C_RADIATION: (409, "RADIATION_DEJA_DEMANDEE"),
    domain.C_DEPARTEMENT: (400, "DEPARTEMENT_INCONNU"),
    domain.C_IDENTIFIANT: (409, "IDENTIFIANT_DEJA_UTILISE"),
    domain.C_USAGER: (404, "USAGER_INCONNU"),
}


def render_refusal(status: int, refused: Refused) -> ConnexionResponse:
    """A refusal of the sanctions rules: its own status per codeSortie, both error shapes."""
    status, nom = SORTIES.get(refused.code, (status, refused.code))
    return json_response(
        status, {"codeHttp": status, "codeErreur": nom, "message": refused.message, "codeSortie": refused.code}
    )


# One backend call for the usager the ``pa-*`` headers designate.
Call = Callable[[SanctionsBackend, Caller, str], UsagerData]


def _run(call: Call) -> ConnexionResponse:
    """Every operation of the API: the request's backend, then ``for_usager`` with this API's refusals."""
    backend = current_request().services.backends.sanctions

    def action(caller: Caller, ref: str) -> UsagerData:
        return call(backend, caller, ref)

    return for_usager(action, render_refusal=render_refusal)


def lire_detail_sanction_rsa(identifiantSanction: str) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.detail_manquement(caller, ref, identifiantSanction))


def traiter_sanction_rsa(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.evenement(caller, ref, body))


def traiter_decision_sanction_r_s_a(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.decision_partenaire(caller, ref, body))


def demande_radiation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.demande_radiation(caller, ref, body))
