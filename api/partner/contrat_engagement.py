"""Contrat d'engagement v1: read the usager's contract, record its signature or refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import for_usager
from parcours.ports import Caller, ContratEngagementBackend, UsagerData

# One backend call for the usager the jeton designates.
Call = Callable[[ContratEngagementBackend, Caller, str], UsagerData]


def _run(call: Call) -> ConnexionResponse:
    """Every operation of the API: the request's backend, then ``for_usager``."""
    state = current_request()
    backend = state.services.backends.contrat_engagement
    return for_usager(state, lambda caller, ref: call(backend, caller, ref))


def lire_contrat_engagement() -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.lire(caller, ref))


def signer_premier_contrat_engagement(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.signer_premier(caller, ref, body))


def signer_contrat_engagement(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.signer(caller, ref, body))


def refuser_contrat_engagement(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.refuser(caller, ref, body))


def refuser_premier_contrat_engagement(body: dict[str, Any]) -> ConnexionResponse:
    """``POST /refuser`` (choix Relais)."""
    return _run(lambda backend, caller, ref: backend.refuser_premier(caller, ref, body))
