"""What a caller sends about an orientation, checked: codes from a list, a structure, a past date.

Each check raises ``parcours.ports.Refused`` (``INVALID``) naming the field, so the contract
answers a 400 that says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from parcours.ports import Refused
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind


def structure_given(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise Refused(RefusalKind.INVALID, "STRUCTURE_INVALIDE", "structure invalide : objet attendu")
    shaped = {key: value.get(key) for key in ("code_aurore", "code_safir", "libelle_structure")}
    return shaped if any(shaped.values()) else None


def code_in(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise Refused(
            RefusalKind.INVALID, f"{name.upper()}_INVALIDE", f"{name} doit valoir l'un de : {', '.join(allowed)}"
        )
    return str(value)


def decision_date(value: Any, *, now: datetime) -> date:
    return past_date(value, "date_decision", now=now) or local_date(now)


def past_date(value: Any, name: str, *, now: datetime) -> date | None:
    """A past or present date given as AAAA-MM-JJ (or a date), None when absent."""
    if value is None:
        return None
    if isinstance(value, date):
        parsed = value
    else:
        try:
            parsed = date.fromisoformat(str(value))
        except ValueError:
            raise Refused(
                RefusalKind.INVALID, f"{name.upper()}_INVALIDE", f"{name} invalide : date AAAA-MM-JJ attendue"
            ) from None
    if parsed > local_date(now):
        raise Refused(RefusalKind.INVALID, f"{name.upper()}_FUTURE", f"{name} ne peut pas être dans le futur")
    return parsed
