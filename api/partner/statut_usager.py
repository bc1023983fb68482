"""Statut usager (contrat-usager v2): the usager's registration status, ``m_contrat``."""

from __future__ import annotations

from dataclasses import replace

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import for_usager
from parcours.ports import Caller, UsagerData


def recuperer_contrat_v2() -> ConnexionResponse:
    state = current_request()
    backend = state.services.backends.statut_usager

    def read(caller: Caller, ref: str) -> UsagerData:
        data = backend.lire_contrat(caller, ref)
        # The contract's body wraps the object: ``{"m_contrat": {...}}``.
        return data if data.payload is None else replace(data, payload={"m_contrat": data.payload})

    return for_usager(state, read)
