"""Reference store backend for Diagnostic argumenté v4: resolves the usager and the caller's
organisation, then applies the parcours domain's rules (``parcours.diagnostic``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from parcours import diagnostic as diagnostic_domain
from parcours.perimeter import attached_usager, caller_organisation
from parcours.ports import Caller, Refused, UsagerData, UsagerNotAttached
from parcours.tables import Usager
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation


class DiagnosticStore:
    def __init__(self, session: Callable[[], Session], clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    def lister(self, caller: Caller, ref: str) -> UsagerData:
        session = self._session()
        usager, _ = self._resolve(session, caller, ref)
        diagnostics = diagnostic_domain.diagnostics_de(session, usager.id)
        # An empty list is still a 200: FT's collection reads ``diagnostics`` from every answer.
        return UsagerData(usager.nir_index, {"diagnostics": [diagnostic_domain.as_contract(d) for d in diagnostics]})

    def creer(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        session = self._session()
        usager, organisation = self._resolve(session, caller, ref)
        diagnostic = diagnostic_domain.creer(session, usager, organisation, caller, body, now=self._clock())
        return UsagerData(usager.nir_index, diagnostic_domain.as_contract(diagnostic))

    def supprimer(self, caller: Caller, ref: str, identifiant: str) -> UsagerData:
        session = self._session()
        usager, _ = self._resolve(session, caller, ref)
        diagnostic_domain.supprimer(session, usager, identifiant)
        return UsagerData(usager.nir_index, None)

    def _resolve(self, session: Session, caller: Caller, ref: str) -> tuple[Usager, Organisation]:
        usager = attached_usager(session, caller, ref)
        if usager is None:
            raise Refused(RefusalKind.INVALID, "USAGER_INCONNU", "L'usager désigné par le jeton n'existe plus")
        organisation = caller_organisation(session, caller)
        if organisation is None:  # attached_usager has refused already; kept for the type checker
            raise UsagerNotAttached
        return usager, organisation
