"""Operational activities are opened and closed by the domain, never by hand.

Each rule of the parcours that puts something on a structure's to-do list calls ``ouvrir``;
the call that does the thing calls ``fermer``. Both run in the caller's transaction, so an
activity never exists without the change that caused it, nor outlives the call that closed it.
Closed activities are kept (``closed_at``, ``closed_by``) as evidence of what was done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from parcours.tables import Activite
from relais.core.french_dates import local_date


@dataclass(frozen=True)
class TypeActivite:
    code: str
    famille: str
    # ``codeDomaine`` is three uppercase letters in the contract; France Travail's values are
    # not public, so these are a Relais choice (ORI orientation, ACC accompagnement, SAN sanctions).
    domaine: str
    libelle: str
    # Days from creation to ``dateEcheance``; ``dateEcheanceProche`` is ``PROCHE_JOURS`` before.
    delai_jours: int


# Délais are Relais choices where the law gives none; the sanctions' 15 days are the
# decision delay of the SIP diagram ("Délais de 15 jours").
TYPES: dict[str, TypeActivite] = {
    t.code: t
    for t in (
        TypeActivite("ACT382", "INSEA", "ORI", "Décision d'orientation à prendre", 30),
        TypeActivite("ACT380", "MSACC", "ACC", "1er RDV d'accompagnement à prendre", 15),
        TypeActivite("ACT366", "GLI100", "SAN", "Proposition suspension RSA à instruire", 15),
        TypeActivite("ACT367", "GLI100", "SAN", "Proposition suspension RSA à traiter", 15),
        TypeActivite("ACT369", "GLI100", "SAN", "Proposition levée de suspension RSA à traiter", 15),
        TypeActivite("ACT370", "GLI100", "SAN", "Proposition suppression RSA à traiter", 15),
    )
}
PROCHE_JOURS = 3

# The first accompaniment appointment to book: opened by an orientation decision, closed by the
# rendez-vous domain. Both name it, and its subject, through these two definitions.
ACT380 = "ACT380"


def sujet_accompagnement(usager_id: str) -> str:
    """The subject of an usager's ACT380, whichever orientation opened it."""
    return f"accompagnement:{usager_id}"


def ouvrir(
    session: Session,
    *,
    code: str,
    organisation_id: int,
    usager_id: str,
    sujet: str,
    now: datetime,
    attributs: Iterable[tuple[str, str]] = (),
) -> Activite:
    """Open activity ``code`` about ``sujet`` for an organisation; idempotent while it is open."""
    type_ = TYPES[code]
    existing = session.exec(
        select(Activite).where(
            Activite.sujet == sujet,
            Activite.code_activite == code,
            Activite.organisation_id == organisation_id,
            col(Activite.closed_at).is_(None),
        )
    ).first()
    if existing is not None:
        return existing
    echeance = local_date(now) + timedelta(days=type_.delai_jours)
    activite = Activite(
        code_activite=code,
        code_famille=type_.famille,
        code_domaine=type_.domaine,
        organisation_id=organisation_id,
        usager_id=usager_id,
        sujet=sujet,
        attributs=[{"nom": nom, "valeur": valeur} for nom, valeur in attributs],
        date_creation=now,
        date_echeance=echeance,
        date_echeance_proche=echeance - timedelta(days=PROCHE_JOURS),
    )
    session.add(activite)
    session.flush()
    return activite


def fermer(
    session: Session, *, sujet: str, par: str, now: datetime, codes: Iterable[str] | None = None
) -> list[Activite]:
    """Close the open activities about ``sujet`` (only ``codes`` if given); ``par`` names the call."""
    query = select(Activite).where(Activite.sujet == sujet, col(Activite.closed_at).is_(None))
    if codes is not None:
        query = query.where(col(Activite.code_activite).in_(list(codes)))
    closed = list(session.exec(query))
    for activite in closed:
        activite.closed_at = now
        activite.closed_by = par[:128]
        session.add(activite)
    session.flush()
    return closed


def ouvertes(session: Session, *, sujet: str) -> list[Activite]:
    return list(session.exec(select(Activite).where(Activite.sujet == sujet, col(Activite.closed_at).is_(None))))


def attribut(activite: Activite, nom: str) -> Any:
    for item in activite.attributs:
        if item.get("nom") == nom:
            return item.get("valeur")
    return None
