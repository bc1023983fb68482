"""The parcours' rule for a date-heure a partner sends: ISO 8601, a year from 1900 to 2199, and
Paris time when it carries no offset (the contracts' examples carry none). Kept in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from relais.core.french_dates import PARIS


def paris_datetime(value: Any) -> datetime:
    """``value`` as an aware UTC datetime; ValueError says, in French, what the field must be."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("doit être une date-heure ISO 8601") from None
    else:
        raise ValueError("doit être une date-heure ISO 8601")
    if not 1900 <= parsed.year <= 2199:
        raise ValueError("doit être comprise entre les années 1900 et 2199")
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=PARIS)).astimezone(UTC)
