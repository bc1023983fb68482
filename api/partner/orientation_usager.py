"""Orientation usager v1: read, compute, decide and force the usager's orientation.

Every operation is per usager (``ft-jeton-usager``) and goes through ``for_usager``: the
domain's refusals become ``{codeHttp, codeErreur, message}`` answers (400, 404, 409) and
roll the whole call back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import for_usager
from parcours.ports import Caller, OrientationBackend, UsagerData

# One backend call for the usager the jeton designates.
Call = Callable[[OrientationBackend, Caller, str], UsagerData]


def _run(call: Call, *, status: int = 200) -> ConnexionResponse:
    state = current_request()
    backend = state.services.backends.orientation
    return for_usager(state, lambda caller, ref: call(backend, caller, ref), status=status)


def lecture_orientation(etatOrientation: str | None = None) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.lire(caller, ref, etat=etatOrientation))


def calcul_orientation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.calculer(caller, ref, body))


def decision_orientation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.decider(caller, ref, body), status=201)


def orientation(body: dict[str, Any]) -> ConnexionResponse:
    return _run(lambda backend, caller, ref: backend.orienter(caller, ref, body), status=201)
