"""Orientation usager v1: read, compute, decide and force the usager's orientation.

Every operation is per usager (``ft-jeton-usager``) and goes through ``for_usager``: the
domain's refusals become ``{codeHttp, codeErreur, message}`` answers (400, 404, 409) and
roll the whole call back.

Answers have France Travail's shape only: its typed client refuses unknown properties
(Jackson's ``FAIL_ON_UNKNOWN_PROPERTIES``). Relais' explanations (calcul's ``justification``,
the decision's ``parcours_preconise`` / ``organisme_preconise``) are added only for a caller
that sends ``X-Relais-Details: oui`` (README, "Relais additions to the partner APIs").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import details_requested, for_usager
from parcours.orientation import DECISION_DETAILS
from parcours.ports import Caller, OrientationBackend, UsagerData

# One backend call for the usager the jeton designates.
Call = Callable[[OrientationBackend, Caller, str], UsagerData]

# Relais' additions to an orientation, outside its decision.
_ORIENTATION_DETAILS = ("justification",)


def _run(call: Call, *, status: int = 200) -> ConnexionResponse:
    state = current_request()
    backend = state.services.backends.orientation
    details = details_requested()

    def act(caller: Caller, ref: str) -> UsagerData:
        data = call(backend, caller, ref)
        if details or data.payload is None:
            return data
        return UsagerData(data.nir_index, _ft_shape(data.payload))

    return for_usager(state, act, status=status)


def _ft_shape(payload: Any) -> Any:
    """``payload`` (an orientation or a list of them) without Relais' additions."""
    if isinstance(payload, list):
        return [_ft_shape(item) for item in payload]
    if not isinstance(payload, dict):
        return payload
    shaped = {key: value for key, value in payload.items() if key not in _ORIENTATION_DETAILS}
    decision = shaped.get("decision")
    if isinstance(decision, dict):
        shaped["decision"] = {key: value for key, value in decision.items() if key not in DECISION_DETAILS}
    return shaped


def lecture_orientation(etatOrientation: str | None = None) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.lire(caller, ref, etat=etatOrientation))


def calcul_orientation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.calculer(caller, ref, body))


def decision_orientation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.decider(caller, ref, body), status=201)


def orientation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.orienter(caller, ref, body), status=201)
