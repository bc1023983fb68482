"""Orientation usager v1: read, compute, decide and force the usager's orientation.

Every operation is per usager (``ft-jeton-usager``) and goes through ``for_usager``: the
domain's refusals become ``{codeHttp, codeErreur, message}`` answers (400, 404, 409) and
roll the whole call back.
"""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import for_usager
from parcours.ports import OrientationBackend


def _backend() -> OrientationBackend:
    return current_request().services.backends.orientation


def lecture_orientation(etatOrientation: str | None = None) -> ConnexionResponse:
    backend = _backend()
    return for_usager(lambda caller, ref: backend.lire(caller, ref, etat=etatOrientation))


def calcul_orientation(body: dict[str, Any]) -> ConnexionResponse:
    backend = _backend()
    return for_usager(lambda caller, ref: backend.calculer(caller, ref, body))


def decision_orientation(body: dict[str, Any]) -> ConnexionResponse:
    backend = _backend()
    return for_usager(lambda caller, ref: backend.decider(caller, ref, body), status=201)


def orientation(body: dict[str, Any]) -> ConnexionResponse:
    backend = _backend()
    return for_usager(lambda caller, ref: backend.orienter(caller, ref, body), status=201)
