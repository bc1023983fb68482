"""Writes shared by the domain modules of the reference store.

- ``lock_usager`` serialises the writes of one usager (orientations, rendez-vous);
- ``save_version`` records a row's next version, which optimistic-concurrency checks and
  ``dateMiseAJour`` read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar

from sqlmodel import Session, select

from parcours.tables import Usager


class Versioned(Protocol):
    """A row whose every write bumps ``version`` and stamps ``updated_at``."""

    version: int
    updated_at: datetime


V = TypeVar("V", bound=Versioned)


def lock_usager(session: Session, usager: Usager) -> None:
    """Serialise one usager's writes (a no-op on SQLite).

    ``key_share`` makes it ``FOR NO KEY UPDATE``: rows that reference the usager can still be
    inserted meanwhile; only the writes that take this lock wait for each other.
    """
    session.exec(select(Usager.id).where(Usager.id == usager.id).with_for_update(key_share=True)).first()


def save_version(session: Session, row: V, now: datetime) -> V:
    """Bump the row's version, stamp it and flush it, so a failing write surfaces here."""
    row.version += 1
    row.updated_at = now
    session.add(row)
    session.flush()
    return row
