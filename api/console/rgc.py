"""The RGC's pages: the organisation's dashboard, agents, grants (by profile, extend, revoke,
reactivate) and the organisation's role designations.

Authorisation and state changes are the admin API handlers' own (``habilitations_common``'s
checks, ``habilitations.grants``): the console is another face of the same rules.

The pages live in one module per subject, and this module lists their routes:

- ``rgc_dashboard``: the organisation's dashboard (grants per API, suspensions due, blocks,
  findings);
- ``rgc_agents``: an agent's page, creating an agent, reactivating an account;
- ``rgc_habilitations``: granting, revoking or reactivating a grant, setting its end date;
- ``rgc_designations``: the organisation's role designations;
- ``rgc_labels`` (the French words of codes) and ``rgc_forms`` (form dates, return URLs).

Its names stay importable from here (``rgc.dashboard``, ``rgc.ROUTES``...).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from api.console.rgc_agents import AGENT_FORM, agent_page, create_agent, new_agent_form, reactivate_agent
from api.console.rgc_dashboard import UPCOMING_DAYS, dashboard
from api.console.rgc_designations import designate, designations_page, end_designation
from api.console.rgc_habilitations import change_state, grant, set_end
from api.console.rgc_labels import (
    ANOMALIES,
    ETATS,
    ETATS_COMPTE,
    MOTIFS,
    MOTIFS_FIN,
    ROLES,
    ROLES_PROPOSES,
    STATUTS,
    motif,
)

__all__ = [
    "AGENT_FORM",
    "ANOMALIES",
    "ETATS",
    "ETATS_COMPTE",
    "MOTIFS",
    "MOTIFS_FIN",
    "ROLES",
    "ROLES_PROPOSES",
    "ROUTES",
    "STATUTS",
    "UPCOMING_DAYS",
    "agent_page",
    "change_state",
    "create_agent",
    "dashboard",
    "designate",
    "designations_page",
    "end_designation",
    "grant",
    "motif",
    "new_agent_form",
    "reactivate_agent",
    "set_end",
]

ROUTES: list[BaseRoute] = [
    Route("/console/habilitations", dashboard, methods=["GET"]),
    Route("/console/habilitations/agents/{agent_id:int}", agent_page, methods=["GET"]),
    Route("/console/habilitations/agents/{agent_id:int}/accorder", grant, methods=["POST"]),
    Route("/console/habilitations/{habilitation_id:str}/etat", change_state, methods=["POST"]),
    Route("/console/habilitations/agents/nouveau", new_agent_form, methods=["GET"]),
    Route("/console/habilitations/agents/nouveau", create_agent, methods=["POST"]),
    Route("/console/habilitations/agents/{agent_id:int}/reactiver", reactivate_agent, methods=["POST"]),
    Route("/console/habilitations/designations", designations_page, methods=["GET"]),
    Route("/console/habilitations/designations", designate, methods=["POST"]),
    Route("/console/habilitations/designations/{designation_id:int}/fin", end_designation, methods=["POST"]),
    Route("/console/habilitations/{habilitation_id:str}/date-fin", set_end, methods=["POST"]),
]
