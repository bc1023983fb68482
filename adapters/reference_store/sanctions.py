"""Placeholder being written: replaced by the sanctions backend of the reference store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from relais.keys import KeySet


class SanctionsStore:
    def __init__(self, session: Callable[[], Session], keys: KeySet, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._keys = keys
        self._clock = clock
