"""Informations administratives v1: the usager's civil status, addresses and contacts."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.partner.per_usager import for_usager


def recuperer_donnees_par_id_rci() -> ConnexionResponse:
    state = current_request()
    return for_usager(state, state.services.backends.informations_administratives.lire)
