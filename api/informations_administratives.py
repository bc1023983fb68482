"""Informations administratives v1: the usager's civil status, addresses and contacts."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse

from api.per_usager import for_usager
from relais.context import current_request


def recuperer_donnees_par_id_rci() -> ConnexionResponse:
    return for_usager(current_request().services.backends.informations_administratives.lire)
