"""The names the tests import from here, now in the test kit (``tests/support``).

The fixtures (``hub``, ``hub_app``, ``module_hub``) come from the kit's plugin for every test
folder; they are re-exported for the modules that import them by name.
"""

from __future__ import annotations

from tests.support.databases import fresh_database_url
from tests.support.dataset import (
    HABILITATED_AGENTS,
    _usager_record,
    dataset,
    habilitations_records,
    keep_dataset_agents_active,
)
from tests.support.hub import Clock, Hub, hub, hub_app, hub_on, module_hub
from tests.support.people import (
    CORSE,
    DOUBLON_A,
    DOUBLON_B,
    GIRONDE,
    GIRONDE_SANS_CONTRAT,
    PEOPLE,
    RATTACHE_EXPLICITE,
    SEINE_SAINT_DENIS,
    Person,
    nir15,
)
from tests.support.scopes import (
    ACTIVITES_V1_SCOPES,
    ACTIVITES_V2_SCOPES,
    AGENT,
    ALIMENTATION_SCOPES,
    ALL_SCOPES,
    CONTRAT_ENGAGEMENT_SCOPES,
    INFOS,
    INFOS_SCOPES,
    ORIENTATION_SCOPES,
    PARCOURS_SCOPES,
    RDV_SCOPES,
    RECHERCHE,
    RECHERCHE_SCOPES,
    SANCTIONS_SCOPES,
    SECRET,
    STATUT,
    STATUT_SCOPES,
    TOKEN_URL,
)

__all__ = [
    "ACTIVITES_V1_SCOPES",
    "ACTIVITES_V2_SCOPES",
    "AGENT",
    "ALIMENTATION_SCOPES",
    "ALL_SCOPES",
    "CONTRAT_ENGAGEMENT_SCOPES",
    "CORSE",
    "DOUBLON_A",
    "DOUBLON_B",
    "GIRONDE",
    "GIRONDE_SANS_CONTRAT",
    "HABILITATED_AGENTS",
    "INFOS",
    "INFOS_SCOPES",
    "ORIENTATION_SCOPES",
    "PARCOURS_SCOPES",
    "PEOPLE",
    "RATTACHE_EXPLICITE",
    "RDV_SCOPES",
    "RECHERCHE",
    "RECHERCHE_SCOPES",
    "SANCTIONS_SCOPES",
    "SECRET",
    "SEINE_SAINT_DENIS",
    "STATUT",
    "STATUT_SCOPES",
    "TOKEN_URL",
    "Clock",
    "Hub",
    "Person",
    "_usager_record",
    "dataset",
    "fresh_database_url",
    "habilitations_records",
    "hub",
    "hub_app",
    "hub_on",
    "keep_dataset_agents_active",
    "module_hub",
    "nir15",
]
