"""Gestion des sanctions RSA v1: detailManquement, evenementSanctionRSA, decisionSanctionRSAPartenaire,
demandeRadiation.

Every answer carries the contract's ``codeSortie`` (C001 on success). A write refused by the
sanctions rules answers 200 with its ``codeSortie``, as FT's diagram does
(``api.refusals.sanctions_sortie_response``); ``detailManquement``'s refusals are a 4xx whose
body carries both ``codeSortie`` and ``{codeHttp, codeErreur, message}``
(``api.refusals.sanctions_refusal_response``).

Answers carry no Relais addition (``DETAIL_RELAIS_FIELDS``: état, historique, événements
autorisés, échéance...) unless the caller sends ``X-Relais-Details: oui``: FT's typed client
refuses unknown properties.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import details_requested, for_usager
from api.refusals import sanctions_refusal_response, sanctions_sortie_response
from parcours.ports import Caller, SanctionsBackend, UsagerData
from parcours.sanctions import DETAIL_RELAIS_FIELDS

# One backend call for the usager the jeton designates.
Call = Callable[[SanctionsBackend, Caller, str], UsagerData]


def _run(call: Call, *, write: bool = True) -> ConnexionResponse:
    """Every operation of the API: the request's backend, then ``for_usager`` with this API's refusals."""
    state = current_request()
    backend = state.services.backends.sanctions
    render = sanctions_sortie_response if write else sanctions_refusal_response
    details = details_requested()

    def act(caller: Caller, ref: str) -> UsagerData:
        data = call(backend, caller, ref)
        if details or not isinstance(data.payload, dict):
            return data
        shaped = {key: value for key, value in data.payload.items() if key not in DETAIL_RELAIS_FIELDS}
        return UsagerData(data.nir_index, shaped)

    return for_usager(state, act, render_refusal=render)


def lire_detail_sanction_rsa(identifiantSanction: str) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.detail_manquement(caller, ref, identifiantSanction), write=False)


def traiter_sanction_rsa(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.evenement(caller, ref, body))


def traiter_decision_sanction_r_s_a(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.decision_partenaire(caller, ref, body))


def demande_radiation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.demande_radiation(caller, ref, body))
