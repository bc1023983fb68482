"""Diagnostic argumenté v4: the rules for creating and deleting an usager's diagnostics, and
the JSON shape the contract answers (the reference store and the demo share it)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from parcours.diagnostic_tables import DiagnosticArgumente
from parcours.ports import Caller, Refused
from parcours.rendez_vous import format_date
from parcours.tables import Usager
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

DIAGNOSTIC_INCONNU = "DIAGNOSTIC_INCONNU"
# The typology labels France Travail's aggregated file shows (les-emplois' mock): only MR is public.
TYPOLOGIES = {"MR": "métier recherché"}
STATUT_EN_COURS = "EN_COURS"


def creer(
    session: Session,
    usager: Usager,
    organisation: Organisation,
    caller: Caller,
    body: dict[str, Any],
    *,
    now: datetime,
) -> DiagnosticArgumente:
    """Record a diagnostic created by the caller's agent; fields outside the contract are ignored."""
    diagnostic = DiagnosticArgumente(
        # FT's identifiers are UUIDs with dashes (collection Postman): editors may store them so.
        id=str(uuid.uuid4()),
        usager_id=usager.id,
        organisation_id=organisation.id,
        code_typologie=body["codeTypologie"],
        code_sous_typologie=body.get("codeSousTypologie"),
        code_rome=body.get("codeRome"),
        code_appellation=body.get("codeAppellation"),
        id_metier_chiffre=body.get("idMetierChiffre"),
        nom_metier=body.get("nomMetier"),
        statut=STATUT_EN_COURS,
        est_creation_partenaire=True,
        agent_id=caller.agent_identifiant or None,
        agent_nom=caller.agent_nom or None,
        agent_prenom=caller.agent_prenom or None,
        agent_structure=organisation.libelle,
        date_mise_a_jour=now,
        created_at=now,
    )
    session.add(diagnostic)
    session.flush()
    return diagnostic


def supprimer(session: Session, usager: Usager, identifiant: str) -> None:
    """Delete the usager's diagnostic; another usager's id is as unknown as a made-up one."""
    diagnostic = session.get(DiagnosticArgumente, identifiant)
    if diagnostic is None or diagnostic.usager_id != usager.id:
        raise Refused(
            RefusalKind.UNKNOWN, DIAGNOSTIC_INCONNU, "Il n'existe pas de diagnostic pour l'id et l'usager indiqués"
        )
    session.delete(diagnostic)
    session.flush()


def diagnostics_de(session: Session, usager_id: str) -> list[DiagnosticArgumente]:
    query = (
        select(DiagnosticArgumente)
        .where(DiagnosticArgumente.usager_id == usager_id)
        .order_by(col(DiagnosticArgumente.created_at), col(DiagnosticArgumente.id))
    )
    return list(session.exec(query))


def as_contract(diagnostic: DiagnosticArgumente) -> dict[str, Any]:
    """The diagnostic as France Travail's aggregated file shows it (les-emplois' mock)."""
    return {
        "idDiagnostic": diagnostic.id,
        "idMetierChiffre": diagnostic.id_metier_chiffre,
        "nomMetier": diagnostic.nom_metier,
        "typologie": TYPOLOGIES.get(diagnostic.code_typologie),
        "codeTypologie": diagnostic.code_typologie,
        "codeSousTypologie": diagnostic.code_sous_typologie,
        "codeRome": diagnostic.code_rome,
        "codeAppellation": diagnostic.code_appellation,
        "statut": diagnostic.statut,
        "estPrioritaire": diagnostic.est_prioritaire,
        "agent": {
            "id": diagnostic.agent_id,
            "nom": diagnostic.agent_nom,
            "prenom": diagnostic.agent_prenom,
            "structure": diagnostic.agent_structure,
        },
        "dateMiseAJour": format_date(diagnostic.date_mise_a_jour),
        "dateMiseAJourProjet": (
            None if diagnostic.date_mise_a_jour_projet is None else format_date(diagnostic.date_mise_a_jour_projet)
        ),
        "estCreationPartenaire": diagnostic.est_creation_partenaire,
    }
