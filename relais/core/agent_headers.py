"""The ``pa-*`` headers by which a partner call names its agent, spelled once.

Their values go to the audit draft (``api.pipeline``), the habilitation check reads the
identifiant (``api.security``), the validation refuses them repeated (``api.validation``), the
errors name the one at fault (``api.errors``) and the France Travail gateway sends them on
(``adapters.france_travail.client``).
"""

from __future__ import annotations

NOM = "pa-nom-agent"
PRENOM = "pa-prenom-agent"
IDENTIFIANT = "pa-identifiant-agent"
ALL = (NOM, PRENOM, IDENTIFIANT)
# The audit draft's field each one fills.
DRAFT_FIELDS = {NOM: "agent_nom", PRENOM: "agent_prenom", IDENTIFIANT: "agent_identifiant"}
