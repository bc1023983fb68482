"""What a sanctions call may carry: the codeSortie of its refusals and the rules of its values.

``parcours.sanctions`` (the state machine and its writes) checks every value it is given
here first, so that a refused call changes nothing; each refusal carries the ``codeSortie``
of Gestion des sanctions RSA (``CODES``), with a detail naming the field, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from parcours.ports import Refused
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind

# codeSortie values (C001 is the contract's; the others are choix Relais).
C_SUCCES = "C001"
C_INCONNUE = "C002"
C_ETAT = "C003"
C_OBLIGATOIRE = "C004"
C_VALEUR = "C005"
C_CONFLIT = "C006"
C_ORGANISATION = "C007"
C_RADIATION = "C008"
C_DEPARTEMENT = "C009"
C_IDENTIFIANT = "C010"
C_USAGER = "C011"

CODES: Mapping[str, str] = {
    C_SUCCES: "Traitement effectué",
    C_INCONNUE: "Conséquence de sanction inconnue pour cet usager",
    C_ETAT: "Événement non autorisé dans l'état actuel de la conséquence de sanction",
    C_OBLIGATOIRE: "Donnée obligatoire absente pour cet événement",
    C_VALEUR: "Valeur non conforme aux règles de gestion",
    C_CONFLIT: "La conséquence de sanction a été modifiée par un autre appel : relisez-la avant de réessayer",
    C_ORGANISATION: "L'organisation de l'accédant ne décide pas de cette conséquence de sanction",
    C_RADIATION: "La radiation a déjà été demandée pour cette conséquence de sanction",
    C_DEPARTEMENT: "Aucun conseil départemental ne couvre l'usager",
    C_IDENTIFIANT: "Identifiant de conséquence de sanction déjà utilisé",
    C_USAGER: "Usager inconnu",
}

KIND: Mapping[str, RefusalKind] = {
    C_INCONNUE: RefusalKind.UNKNOWN,
    C_ETAT: RefusalKind.CONFLICT,
    C_OBLIGATOIRE: RefusalKind.INVALID,
    C_VALEUR: RefusalKind.INVALID,
    C_CONFLIT: RefusalKind.CONFLICT,
    C_ORGANISATION: RefusalKind.INVALID,
    C_RADIATION: RefusalKind.CONFLICT,
    C_DEPARTEMENT: RefusalKind.INVALID,
    C_IDENTIFIANT: RefusalKind.CONFLICT,
    C_USAGER: RefusalKind.UNKNOWN,
}


def refus(code: str, detail: str | None = None) -> Refused:
    message = CODES[code]
    return Refused(KIND[code], code, f"{message} : {detail}" if detail else message)


# Value rules ----------------------------------------------------------------------------
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Identifiers are kept as given, within this alphabet; any other value designates nothing.
IDENTIFIANT = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Codes of the manquement (N65, R2...) and of the contract's closed lists.
_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")
# Free texts: no control characters (and so no NUL, which PostgreSQL text refuses).
_CONTROLE = re.compile(r"[\x00-\x1f\x7f]")
MAX_MOTIF = 255
MAX_CODE = 32


@dataclass(frozen=True)
class Valeurs:
    """A modalité, amount and duration checked together (proposed or validated)."""

    modalite: str | None
    montant: float | None
    duree: int | None


def valider_date(payload: Mapping[str, Any], name: str, *, now: datetime, required: bool) -> date | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise refus(C_OBLIGATOIRE, name)
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        raise refus(C_VALEUR, f"{name} doit être une date au format AAAA-MM-JJ")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise refus(C_VALEUR, f"{name} doit être une date au format AAAA-MM-JJ") from None
    if parsed > local_date(now):
        raise refus(C_VALEUR, f"{name} ne peut pas être dans le futur")
    return parsed


def valider_code(
    payload: Mapping[str, Any], name: str, *, required: bool, allowed: tuple[str, ...] | None = None
) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise refus(C_OBLIGATOIRE, name)
        return None
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise refus(C_VALEUR, f"{name} doit être un code d'au plus {MAX_CODE} lettres, chiffres, . _ -")
    if allowed is not None and value not in allowed:
        raise refus(C_VALEUR, f"{name} doit valoir {', '.join(allowed)}")
    return value


def valeurs(payload: Mapping[str, Any], modalite: str, montant: str, duree: str, *, required: bool) -> Valeurs:
    """Check a modalité (M = amount in euros > 0, P = rate 30-100) and a duration (1-4 months)."""
    for name in (modalite, montant, duree) if required else ():
        if payload.get(name) is None:
            raise refus(C_OBLIGATOIRE, name)
    m = valider_code(payload, modalite, required=False, allowed=("M", "P"))
    raw_montant = payload.get(montant)
    raw_duree = payload.get(duree)
    value: float | None = None
    if raw_montant is not None:
        if isinstance(raw_montant, bool) or not isinstance(raw_montant, int | float):
            raise refus(C_VALEUR, f"{montant} doit être un nombre")
        if m is None:
            raise refus(C_OBLIGATOIRE, f"{modalite} (nécessaire pour interpréter {montant})")
        value = float(raw_montant)
        if m == "M" and not value > 0:
            raise refus(C_VALEUR, f"{montant} est un montant en euros strictement positif (modalité M)")
        if m == "P" and not 30 <= value <= 100:
            raise refus(C_VALEUR, f"{montant} est un taux compris entre 30 et 100 (modalité P)")
        if value > 1_000_000:
            raise refus(C_VALEUR, f"{montant} est hors des bornes autorisées")
    d: int | None = None
    if raw_duree is not None:
        if isinstance(raw_duree, bool) or not isinstance(raw_duree, int):
            raise refus(C_VALEUR, f"{duree} est un nombre entier de mois")
        if not 1 <= raw_duree <= 4:
            raise refus(C_VALEUR, f"{duree} est un nombre de mois compris entre 1 et 4")
        d = raw_duree
    return Valeurs(m, value, d)


def valider_motif(payload: Mapping[str, Any], *, required: bool) -> str | None:
    value = payload.get("motifEvenement")
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise refus(C_OBLIGATOIRE, "motifEvenement")
        return None
    if not isinstance(value, str) or len(value) > MAX_MOTIF or _CONTROLE.search(value):
        raise refus(
            C_VALEUR, f"motifEvenement est un texte d'au plus {MAX_MOTIF} caractères, sans caractère de contrôle"
        )
    return value.strip()


def valider_manquement(payload: Mapping[str, Any], *, now: datetime, required: bool) -> dict[str, Any]:
    nature = valider_code(payload, "natureManquement", required=required)
    rang = valider_code(payload, "rangManquement", required=required)
    date_manquement = valider_date(payload, "dateManquement", now=now, required=False)
    manquement: dict[str, Any] = {"natureManquement": nature, "rangManquement": rang}
    manquement["dateManquement"] = date_manquement.isoformat() if date_manquement else None
    libelle = payload.get("libelleManquement")
    if libelle is not None:
        if not isinstance(libelle, str) or len(libelle) > MAX_MOTIF or _CONTROLE.search(libelle):
            raise refus(C_VALEUR, f"libelleManquement est un texte d'au plus {MAX_MOTIF} caractères, sans contrôle")
        manquement["libelleManquement"] = libelle
    return manquement
