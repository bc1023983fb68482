"""Activités opérationnelles backend of the reference store: a structure's open to-do list.

A caller sees only the open activities of its own organisation, sorted by ascending due date
(``dateEcheance``, then ``identifiantActivite`` so that the order is total), one page at a
time. The cursor is opaque to clients: the position after the last activity of the page
(due date and id), so that paging stays correct while activities open and close between calls.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from parcours.perimeter import caller_organisation
from parcours.ports import ActivitesPage, Caller, Refused
from parcours.tables import Activite, Usager
from relais.core.refusals import RefusalKind

_CURSOR_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
CURSEUR_INVALIDE = "CURSEUR_INVALIDE"


class ActivitesStore:
    def __init__(self, session: Callable[[], Session], clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    def chercher(
        self,
        caller: Caller,
        *,
        code_activite: str | None,
        code_famille: str | None,
        code_domaine: str | None,
        cursor: str | None,
        limit: int,
    ) -> ActivitesPage:
        after = decode_cursor(cursor) if cursor is not None else None
        session = self._session()
        organisation = caller_organisation(session, caller)
        if organisation is None:
            return ActivitesPage([], None)
        query = (
            select(Activite, Usager.numero_france_travail)
            .join(Usager, col(Usager.id) == col(Activite.usager_id))
            .where(Activite.organisation_id == organisation.id, col(Activite.closed_at).is_(None))
        )
        if code_activite is not None:
            query = query.where(Activite.code_activite == code_activite)
        if code_famille is not None:
            query = query.where(Activite.code_famille == code_famille)
        if code_domaine is not None:
            query = query.where(Activite.code_domaine == code_domaine)
        if after is not None:
            echeance, last_id = after
            query = query.where(
                or_(
                    col(Activite.date_echeance) > echeance,
                    and_(col(Activite.date_echeance) == echeance, col(Activite.id) > last_id),
                )
            )
        query = query.order_by(col(Activite.date_echeance), col(Activite.id)).limit(limit + 1)
        rows = list(session.exec(query))
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit and page else None
        return ActivitesPage([activite_json(activite, numero) for activite, numero in page], next_cursor)


def instant(value: date | datetime) -> str:
    """``AAAA-MM-JJTHH:MM:SSZ``: the three dates are ``Instant`` in FT's demo client (Activite),
    which Jackson's default deserializer reads as ISO instants; a due date is midnight UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def activite_json(activite: Activite, numero_france_travail: str) -> dict[str, Any]:
    """An activity in Activités opérationnelles v2 field names."""
    return {
        "identifiantActivite": activite.id,
        "codeActivite": activite.code_activite,
        "usager": {"identifiant": numero_france_travail, "typeIdentifiant": "numeroFranceTravail"},
        "dateCreation": instant(activite.date_creation),
        "dateEcheance": instant(activite.date_echeance),
        "dateEcheanceProche": instant(activite.date_echeance_proche) if activite.date_echeance_proche else None,
        "attributsSpecifiques": [
            {"nom": str(item.get("nom")), "valeur": None if item.get("valeur") is None else str(item.get("valeur"))}
            for item in activite.attributs
        ],
    }


def encode_cursor(activite: Activite) -> str:
    raw = json.dumps([activite.date_echeance.isoformat(), activite.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[date, str]:
    """The position a cursor designates; ``Refused`` (400) for anything this store did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        echeance, last_id = json.loads(raw)
        if not isinstance(echeance, str) or not isinstance(last_id, str) or not _CURSOR_ID.match(last_id):
            raise ValueError
        return date.fromisoformat(echeance), last_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise Refused(
            RefusalKind.INVALID,
            CURSEUR_INVALIDE,
            "Curseur invalide : renvoyez le curseur de la réponse précédente sans le modifier",
        ) from None
