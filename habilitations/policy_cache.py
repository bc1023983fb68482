"""Decisions remembered between calls, valid while the habilitation data has not changed.

Every change to a table the decision reads (organisations, clients, agents, habilitations,
subscriptions, designations) bumps ``policy_version.version`` **in the changing transaction
itself**: database triggers do it (migration ``c0ffee000013``), so no path can forget it — an
ORM flush, a Core statement, the command line, an import, another process or another replica.
A call reads the version once (one primary-key lookup) and uses a remembered decision only
when it was taken under that same version, on the same local day: a revocation, a suspension
or a block is committed together with a new version, so the very next call, in any process,
misses the cache and is judged on the rows again.

The day matters because a decision also depends on the date (an inactivity deadline, a grant's
end date, the once-a-day activity write): an allowed decision taken on day D stays true all
of D unless a row changes, and a new day starts afresh.

Only allowed decisions are remembered. Refusals are rare, write audit events of their own and
sometimes suspend an agent: they always go to the rows.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from sqlalchemy import BigInteger, Column, text
from sqlmodel import Field, Session, SQLModel

# The tables whose changes invalidate remembered decisions: the migration puts a trigger on
# each. A table the decision starts reading must be added there, in a new migration.
POLICY_TABLES = ("organisation", "client", "agent", "habilitation", "souscription", "designation")
# A bound on memory: past it, the cache starts over (a flood of distinct keys costs reads,
# never memory).
MAX_ENTRIES = 10_000

Value = TypeVar("Value")


class PolicyVersion(SQLModel, table=True):
    """One row (id 1): how many changes the habilitation tables have seen."""

    __tablename__ = "policy_version"

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


VERSION_QUERY = "SELECT version FROM policy_version WHERE id = 1"
_READ_VERSION = text(VERSION_QUERY)


def current_version(session: Session) -> int | None:
    """The version as this transaction sees it; None (cache nothing) when the row is missing."""
    value = session.execute(_READ_VERSION).scalar()
    return None if value is None else int(value)


@dataclass(frozen=True)
class _Entry(Generic[Value]):
    version: int
    day: date | None
    value: Value


class VersionedCache(Generic[Value]):
    """Values keyed by anything hashable, each valid for one policy version (and one day)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, _Entry[Value]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: int | None, day: date | None = None) -> Value | None:
        entry = self._entries.get(key)
        if entry is None or version is None or entry.version != version or entry.day != day:
            self.misses += 1
            return None
        self.hits += 1
        return entry.value

    def put(self, key: Hashable, version: int | None, value: Value, day: date | None = None) -> None:
        """Remember ``value`` as read under ``version`` (read *before* the rows it judges)."""
        if version is None:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = _Entry(version, day, value)

    def clear(self) -> None:
        self._entries.clear()
