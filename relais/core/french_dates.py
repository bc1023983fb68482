"""Dates written out in French, as letters, notices and reports for people show them; and the
time zone the réseau pour l'emploi lives in (metropolitan France: the contracts' local times)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def local_time(moment: datetime) -> datetime:
    """``moment`` in France's time, as people read it. Naive datetimes (SQLite's) were written
    in UTC."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(PARIS)


def local_date(moment: datetime) -> date:
    """The calendar day in France at ``moment``: "today" for every rule that compares dates
    (from 23:00 or 22:00 UTC it is already tomorrow in Paris)."""
    return local_time(moment).date()


MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def long_date(day: date, *, weekday: bool = False) -> str:
    """« 1er décembre 2026 », or with ``weekday`` « mardi 1er décembre 2026 »."""
    first = "1er" if day.day == 1 else str(day.day)
    written = f"{first} {MONTHS[day.month - 1]} {day.year}"
    return f"{DAYS[day.weekday()]} {written}" if weekday else written
