"""Orientation usager v1 backend of the reference store: perimeter, then the domain rules.

``calculOrientation`` applies the département's rule table: the store asks ``rules`` for it on
each call (the web shell reads the configured file, cached until it changes), so a new table
applies without a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from parcours import orientation as orientation_domain
from parcours.orientation_rules import RuleTable, load_rules
from parcours.perimeter import attached_usager
from parcours.ports import Caller, Refused, UsagerData
from parcours.tables import Orientation, Usager
from relais.core.refusals import RefusalKind


class _Ecriture(Protocol):
    """The signature ``orientation_domain.decider`` and ``orientation_domain.orienter`` share
    (positional-only: they name their body differently)."""

    def __call__(
        self, session: Session, usager: Usager, payload: dict[str, Any], /, *, now: datetime, agent: str
    ) -> Orientation: ...


class OrientationStore:
    """Implements ``OrientationBackend`` on the reference store."""

    def __init__(
        self,
        session: Callable[[], Session],
        clock: Callable[[], datetime],
        rules: Callable[[], RuleTable] = load_rules,
    ) -> None:
        self._session = session
        self._clock = clock
        # The shipped default table unless the shell says which one (``orientation_rules_file``).
        self._rules = rules

    def lire(self, caller: Caller, ref: str, *, etat: str | None) -> UsagerData:
        session = self._session()
        usager = attached_usager(session, caller, ref)
        if usager is None:
            return UsagerData(None, None)
        found = orientation_domain.orientations(session, usager.id, etat=etat)
        if not found:
            return UsagerData(usager.nir_index, None)
        return UsagerData(usager.nir_index, [orientation_domain.orientation_json(item) for item in found])

    def calculer(self, caller: Caller, ref: str, criteres: dict[str, Any]) -> UsagerData:
        session = self._session()
        usager = self._usager(session, caller, ref)
        orientation, verdict = orientation_domain.calculer(
            session, usager, criteres, now=self._clock(), agent=caller.agent_identifiant, rules=self._rules()
        )
        payload = orientation_domain.orientation_json(orientation)
        payload["justification"] = verdict.justification
        return UsagerData(usager.nir_index, payload)

    def decider(self, caller: Caller, ref: str, decision: dict[str, Any]) -> UsagerData:
        return self._ecrire(caller, ref, decision, orientation_domain.decider)

    def orienter(self, caller: Caller, ref: str, orientation: dict[str, Any]) -> UsagerData:
        return self._ecrire(caller, ref, orientation, orientation_domain.orienter)

    def _ecrire(self, caller: Caller, ref: str, payload: dict[str, Any], operation: _Ecriture) -> UsagerData:
        """A write that answers the orientation it made (``decider``, ``orienter``)."""
        session = self._session()
        usager = self._usager(session, caller, ref)
        orientation = operation(session, usager, payload, now=self._clock(), agent=caller.agent_identifiant)
        return UsagerData(usager.nir_index, orientation_domain.orientation_json(orientation))

    def _usager(self, session: Session, caller: Caller, ref: str) -> Usager:
        usager = attached_usager(session, caller, ref)
        if usager is None:
            raise Refused(RefusalKind.UNKNOWN, "USAGER_INCONNU", "L'usager désigné par le jeton n'est plus connu")
        return usager
