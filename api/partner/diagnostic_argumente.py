"""Diagnostic argumenté v4: the usager's diagnostics (métiers recherchés), read, created, deleted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.errors import erreur_partenaire, note_refusal
from api.partner.per_usager import for_usager
from parcours.ports import Caller, DiagnosticBackend, UsagerData

# One backend call for the usager the jeton designates.
Call = Callable[[DiagnosticBackend, Caller, str], UsagerData]


def _run(call: Call) -> ConnexionResponse:
    state = current_request()
    backend = state.services.backends.diagnostic
    if backend is None:
        note_refusal("diagnostic_non_servi")
        return erreur_partenaire(503, "SERVICE_INDISPONIBLE", "Service indisponible, veuillez réessayer ultérieurement")
    # FT's collection expects 200 for all three calls, the deletion included.
    response = for_usager(state, lambda caller, ref: call(backend, caller, ref))
    if response.status_code == 204:
        return ConnexionResponse(status_code=200)
    return response


def recuperer_diagnostics() -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.lister(caller, ref))


def creer_diagnostic(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.creer(caller, ref, body))


def supprimer_diagnostic(idDiagnostic: str) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.supprimer(caller, ref, idDiagnostic))
