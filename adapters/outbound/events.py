"""Domain events for the organisations' connectors, written in the change's own transaction.

The reference store's domain modules call ``publish`` (through the small helpers below) right
where a change concerning an organisation happens; ``publish`` writes one outbox message per
connector of that organisation subscribed to the event type. If the change is rolled back,
so are its events; if it commits, the worker delivers them.

What an event carries (the contract: specs/editor-webhook-v1.yaml): identifiers, states,
codes and dates, never names, birth dates, addresses, e-mails or the NIR. The usager is named
by ``numeroFranceTravail``, the identifier the same organisation already reads in its
activités opérationnelles; only organisations the usager is attached to receive an event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, col, select

from adapters.outbound.models import FORMAT_V1, Connector
from parcours.perimeter import organisation_for
from parcours.tables import ConsequenceSanction, ContratEngagement, Orientation, RendezVous, Usager
from relais.core.outbox import enqueue
from relais.core.tables import Organisation, new_id

ORIENTATION_A_DECIDER = "orientation.a_decider"
ORIENTATION_DECIDEE = "orientation.decidee"
RDV_PRIS = "rendez_vous.pris"
RDV_MODIFIE = "rendez_vous.modifie"
RDV_ANNULE = "rendez_vous.annule"
CONTRAT_SIGNE = "contrat_engagement.signe"
CONTRAT_REFUSE = "contrat_engagement.refuse"
SANCTION_A_INSTRUIRE = "sanction.a_instruire"
SANCTION_ETAT_MODIFIE = "sanction.etat_modifie"
SANCTION_DECIDEE = "sanction.decidee"


def publish(
    session: Session,
    organisation_ids: Iterable[int | None],
    event_type: str,
    data: dict[str, Any],
    now: datetime,
) -> int:
    """Queue ``event_type`` for every subscribed connector of these organisations; how many."""
    wanted = {organisation_id for organisation_id in organisation_ids if organisation_id is not None}
    if not wanted:
        return 0
    connectors = session.exec(
        select(Connector).where(col(Connector.organisation_id).in_(wanted)).order_by(col(Connector.id))
    ).all()
    queued = 0
    for connector in connectors:
        if not connector.wants(event_type):
            continue
        organisation = session.get(Organisation, connector.organisation_id)
        event_id = new_id()
        enqueue(
            session,
            topic=event_type,
            recipient=connector.recipient,
            payload={
                "id": event_id,
                "type": event_type,
                "format": FORMAT_V1,
                "date": _iso(now.astimezone(UTC)),
                "organisation": organisation.code if organisation is not None else None,
                "donnees": data,
            },
            idempotency_key=f"evenement:{event_id}",
            now=now,
            organisation_id=connector.organisation_id,
        )
        queued += 1
    return queued


# What each change tells ------------------------------------------------------------------


def orientation_a_decider(
    session: Session, usager: Usager, orientation: Orientation, organisation_id: int | None, now: datetime
) -> None:
    publish(session, [organisation_id], ORIENTATION_A_DECIDER, _orientation(usager, orientation), now)


def orientation_decidee(
    session: Session, usager: Usager, orientation: Orientation, organisation_ids: Iterable[int | None], now: datetime
) -> None:
    publish(session, organisation_ids, ORIENTATION_DECIDEE, _orientation(usager, orientation), now)


def rendez_vous(
    session: Session,
    usager: Usager,
    rdv: RendezVous,
    event_type: str,
    organisation_ids: Iterable[int | None],
    now: datetime,
) -> None:
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
    publish(session, [rdv.organisation_id, *organisation_ids], event_type, data, now)


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
    publish(session, [departement.id if departement else None], event_type, data, now)


def sanction(
    session: Session, usager: Usager, consequence: ConsequenceSanction, event_type: str, now: datetime
) -> None:
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
    publish(session, [consequence.organisation_id], event_type, data, now)


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
