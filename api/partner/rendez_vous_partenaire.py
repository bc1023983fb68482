"""Rendez-vous partenaire v1: the appointments partners book for an usager."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import for_usager
from api.refusals import refusal_response
from parcours.ports import Caller, Refused, RendezVousBackend, UsagerData
from parcours.rendez_vous import RDV_AUTRE_STRUCTURE
from relais.core.refusals import RefusalKind

# ``ID_NON_RECONNU`` is a 400 in France Travail's answers (rdv-insertion relies on it).
STATUSES: Mapping[RefusalKind, int] = {RefusalKind.UNKNOWN: 400}
# A rendez-vous booked by another organisation: the caller may see it, not change it.
BY_CODE: Mapping[str, int] = {RDV_AUTRE_STRUCTURE: 403}

# One backend call for the usager the jeton designates.
Call = Callable[[RendezVousBackend, Caller, str], UsagerData]


def _refused(refused: Refused) -> ConnexionResponse:
    return refusal_response(refused, statuses=STATUSES, by_code=BY_CODE)


def _run(call: Call, *, status: int = 200) -> ConnexionResponse:
    state = current_request()
    backend = state.services.backends.rendez_vous
    return for_usager(state, lambda caller, ref: call(backend, caller, ref), status=status, render_refusal=_refused)


def creer_rendez_vous(body: dict[str, Any]) -> ConnexionResponse:
    # France Travail answers the creation 202 (SIP Postman collection).
    return _run(lambda backend, caller, ref: backend.creer(caller, ref, body), status=202)


def modifier_rendez_vous(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.modifier(caller, ref, body))


def supprimer_rendez_vous(id: str) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.supprimer(caller, ref, id))


def consulter_rendez_vous_usager() -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.lister(caller, ref))
