"""The contract's JSON shape of an orientation (Orientation usager v1, FT's classes, snake_case),
shared by the reference store, the producer feed and the importer so that they answer alike.

A field added to the ``Orientation`` table is shown by adding it to ``orientation_json`` here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from parcours.orientation_rules import CRITERES
from parcours.tables import Orientation

# The contract's criteria (CRITERES) are the rule table's, defined once in orientation_rules.
# What FT's CriteresOrientation class has: the MSA criteria, which FT's collection sends to
# calculOrientation, are kept for the rules but not shown (FT's client refuses unknown fields).
CRITERES_AFFICHES = tuple(name for name in CRITERES if not name.startswith("msa_"))
# FT's Decision class, in its order.
DECISION_FIELDS = (
    "etat_decision",
    "date_decision",
    "organisme_decision",
    "structure_decision",
    "agent_decision",
    "motif_refus",
    "commentaire_refus",
    "structure",
)
# Relais' additions to a decision, shown only on opt-in (api.partner.orientation_usager).
DECISION_DETAILS = ("parcours_preconise", "organisme_preconise")


def orientation_json(orientation: Orientation) -> dict[str, Any]:
    """The orientation as Orientation usager v1 shows it (snake_case)."""
    return {
        "parcours": orientation.parcours,
        "organisme": orientation.organisme,
        "organisme_decision": orientation.organisme_decision,
        "structure": _structure_json(orientation.structure),
        "structure_decision": _structure_json(orientation.structure_decision),
        "statut": orientation.statut,
        "etat": orientation.etat,
        "agent_creation": orientation.agent_creation,
        "agent_derniere_modification": orientation.agent_derniere_modification,
        "date_entree_parcours": _iso(orientation.date_entree_parcours),
        "date_sortie_parcours": _iso(orientation.date_sortie_parcours),
        "motif_sortie_parcours": orientation.motif_sortie_parcours,
        "origine": orientation.origine,
        "date_creation": local_date_time(orientation.created_at),
        "date_modification": local_date_time(orientation.updated_at),
        "criteres_orientation": _criteres_json(orientation.criteres),
        "decision": _decision_json(orientation.decision),
    }


def _decision_json(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    if not decision:
        return None
    shaped = {key: decision.get(key) for key in DECISION_FIELDS}
    for key in ("structure_decision", "structure"):
        shaped[key] = _structure_json(decision.get(key))
    # Relais' additions (what was preconised before a refusal): only for a caller that opts in,
    # FT's classes refuse unknown properties (api.partner.orientation_usager strips them).
    for key in DECISION_DETAILS:
        if key in decision:
            shaped[key] = decision[key]
    return shaped


def _criteres_json(criteres: dict[str, Any] | None) -> dict[str, Any] | None:
    if not criteres:
        return None
    shaped = {key: value for key, value in criteres.items() if key in CRITERES_AFFICHES}
    saisie = criteres.get("date_saisie_donnees")
    if saisie is not None:
        # Rows written before FT's local date-time format stored a bare date: show it at midnight.
        if isinstance(saisie, str) and len(saisie) == 10:
            saisie = f"{saisie}T00:00:00"
        shaped["date_saisie_donnees"] = saisie
    return shaped


def local_date_time(value: datetime | None) -> str | None:
    """A UTC instant as FT writes it: ``AAAA-MM-JJTHH:MM:SS``, no fraction, no offset.

    FT's demo client parses these fields with ``InstantWithoutZDeserializer``
    (``ISO_LOCAL_DATE_TIME`` read as UTC), which refuses an offset.
    """
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat()


def _structure_json(structure: dict[str, Any] | None) -> dict[str, Any] | None:
    if not structure:
        return None
    return {
        "code_aurore": structure.get("code_aurore"),
        "code_safir": structure.get("code_safir"),
        "libelle_structure": structure.get("libelle_structure"),
    }


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
