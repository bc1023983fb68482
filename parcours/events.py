"""The facts of a parcours the organisations hear of: one domain event each, in the change's transaction.

The domain modules call these helpers right where a change happens; each publishes one
``DomainEvent`` through the kernel outbox (``relais.core.outbox.publish``). Who hears of it
(which connectors of which organisation, in which envelope) is the outbound side's business
(``adapters/outbound/events.py``); the domain only says what happened and which
organisations it concerns. If the change is rolled back, so is what its event queued.

What an event carries (the contract: specs/editor-webhook-v1.yaml): identifiers, states,
codes and dates, never names, birth dates, addresses, e-mails or the NIR. The usager is named
by ``numeroFranceTravail``, the identifier the same organisation already reads in its
activités opérationnelles; only organisations the usager is attached to are concerned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from parcours.perimeter import organisation_for
from parcours.tables import ConsequenceSanction, ContratEngagement, Orientation, RendezVous, Usager
from relais.core.outbox import DomainEvent, publish
from relais.core.tables import Organisation

ORIENTATION_A_DECIDER = "orientation.a_decider"
ORIENTATION_DECIDEE = "orientation.decidee"
RDV_PRIS = "rendez_vous.pris"
RDV_MODIFIE = "rendez_vous.modifie"
RDV_ANNULE = "rendez_vous.annule"
# An appointment's outcome (by the API's PUT or an editor's file): its own event, not « pris ».
RDV_EFFECTUE = "rendez_vous.effectue"
RDV_ABSENT = "rendez_vous.absent"
CONTRAT_SIGNE = "contrat_engagement.signe"
CONTRAT_REFUSE = "contrat_engagement.refuse"
SANCTION_A_INSTRUIRE = "sanction.a_instruire"
SANCTION_ETAT_MODIFIE = "sanction.etat_modifie"
SANCTION_DECIDEE = "sanction.decidee"
# Every event type of the editor-facing contract, in its order.
EVENT_TYPES = (
    ORIENTATION_A_DECIDER,
    ORIENTATION_DECIDEE,
    RDV_PRIS,
    RDV_MODIFIE,
    RDV_ANNULE,
    RDV_EFFECTUE,
    RDV_ABSENT,
    CONTRAT_SIGNE,
    CONTRAT_REFUSE,
    SANCTION_A_INSTRUIRE,
    SANCTION_ETAT_MODIFIE,
    SANCTION_DECIDEE,
)


def tell(
    session: Session, event_type: str, organisation_ids: Iterable[int | None], data: dict[str, Any], now: datetime
) -> None:
    """Publish one fact concerning these organisations (None: no such organisation, skipped)."""
    concerned = tuple(dict.fromkeys(i for i in organisation_ids if i is not None))
    if concerned:
        publish(session, DomainEvent(type=event_type, organisation_ids=concerned, data=data, occurred_at=now))


# What each change tells ------------------------------------------------------------------


def orientation_a_decider(
    session: Session, usager: Usager, orientation: Orientation, organisation_id: int | None, now: datetime
) -> None:
    tell(session, ORIENTATION_A_DECIDER, [organisation_id], _orientation(usager, orientation), now)


def orientation_decidee(
    session: Session, usager: Usager, orientation: Orientation, organisation_ids: Iterable[int | None], now: datetime
) -> None:
    tell(session, ORIENTATION_DECIDEE, organisation_ids, _orientation(usager, orientation), now)


def rendez_vous(
    session: Session,
    usager: Usager,
    rdv: RendezVous,
    event_type: str,
    organisation_ids: Iterable[int | None],
    now: datetime,
) -> None:
    """To the booking organisation and to ``organisation_ids`` (the usager's département)."""
    data = {
        "numeroFranceTravail": usager.numero_france_travail,
        "rendezVous": {
            "id": rdv.id,
            "date": _iso(rdv.date),
            "duree": rdv.duree,
            "motif": rdv.motif,
            "statut": rdv.statut,
            "modaliteContact": rdv.modalite_contact,
            "organisme": (rdv.organisme or {}).get("code"),
            "structure": _organisation_code(session, rdv.organisation_id),
        },
    }
    tell(session, event_type, [rdv.organisation_id, *organisation_ids], data, now)


def contrat_engagement(session: Session, contrat: ContratEngagement, event_type: str, now: datetime) -> None:
    """To the usager's département, which follows the contrat d'engagement."""
    usager = session.get(Usager, contrat.usager_id)
    if usager is None:
        return
    departement = organisation_for(session, usager, "CD")
    data = {
        "numeroFranceTravail": usager.numero_france_travail,
        "contrat": {
            "identifiant": contrat.id,
            "etat": contrat.etat,
            "dateSignature": _iso(contrat.date_signature),
            "dateRefus": _iso(contrat.date_refus),
            "organisme": contrat.organisme,
        },
    }
    tell(session, event_type, [departement.id if departement else None], data, now)


def sanction(
    session: Session, usager: Usager, consequence: ConsequenceSanction, event_type: str, now: datetime
) -> None:
    """To the département that instructs the consequence."""
    data = {
        "numeroFranceTravail": usager.numero_france_travail,
        "consequence": {
            "identifiantConsequenceSanction": consequence.id,
            "typeConsequenceSanction": consequence.type_consequence,
            "etat": consequence.etat,
            "origine": consequence.origine,
            "typeConsequenceSanctionValide": consequence.type_consequence_validee,
            "dateEcheance": _iso(consequence.date_echeance),
        },
    }
    tell(session, event_type, [consequence.organisation_id], data, now)


def _orientation(usager: Usager, orientation: Orientation) -> dict[str, Any]:
    decision = orientation.decision or {}
    return {
        "numeroFranceTravail": usager.numero_france_travail,
        "orientation": {
            "identifiant": orientation.id,
            "etat": orientation.etat,
            "statut": orientation.statut,
            "parcours": orientation.parcours,
            "organisme": orientation.organisme,
            "structure": _structure_code(orientation.structure),
            "organismeDecision": orientation.organisme_decision,
            "structureDecision": _structure_code(orientation.structure_decision),
            "etatDecision": decision.get("etat_decision"),
            "dateDecision": decision.get("date_decision"),
            "dateEntreeParcours": _iso(orientation.date_entree_parcours),
        },
    }


def _structure_code(structure: dict[str, Any] | None) -> str | None:
    return (structure or {}).get("code_aurore")


def _organisation_code(session: Session, organisation_id: int | None) -> str | None:
    if organisation_id is None:
        return None
    organisation = session.get(Organisation, organisation_id)
    return organisation.code if organisation is not None else None


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
