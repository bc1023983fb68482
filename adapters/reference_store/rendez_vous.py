"""Reference store backend for Rendez-vous partenaire v1: resolves the usager and the
caller's organisation, then applies the parcours domain's rules (``parcours.rendez_vous``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from parcours import rendez_vous as rendez_vous_domain
from parcours.perimeter import attached_usager, caller_organisation
from parcours.ports import Caller, Refused, UsagerData, UsagerNotAttached
from parcours.tables import Usager
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation


class RendezVousStore:
    def __init__(self, session: Callable[[], Session], clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    def creer(self, caller: Caller, ref: str, rendez_vous: dict[str, Any]) -> UsagerData:
        session = self._session()
        usager, organisation = self._resolve(session, caller, ref)
        # The identifier is Relais' to assign: one sent with a creation is ignored.
        payload = {key: value for key, value in rendez_vous.items() if key != "id"}
        rdv = rendez_vous_domain.enregistrer_rendez_vous(session, usager, organisation, payload, now=self._clock())
        return UsagerData(usager.nir_index, rendez_vous_domain.as_contract(rdv))

    def modifier(self, caller: Caller, ref: str, rendez_vous: dict[str, Any]) -> UsagerData:
        session = self._session()
        usager, organisation = self._resolve(session, caller, ref)
        rdv = rendez_vous_domain.modifier_rendez_vous(session, usager, organisation, rendez_vous, now=self._clock())
        return UsagerData(usager.nir_index, rendez_vous_domain.as_contract(rdv))

    def supprimer(self, caller: Caller, ref: str, identifiant: str) -> UsagerData:
        session = self._session()
        usager, organisation = self._resolve(session, caller, ref)
        rendez_vous_domain.annuler_rendez_vous(session, usager, organisation, identifiant, now=self._clock())
        return UsagerData(usager.nir_index, None)

    def lister(self, caller: Caller, ref: str) -> UsagerData:
        session = self._session()
        usager = attached_usager(session, caller, ref)
        if usager is None:
            return UsagerData(None, None)
        rendez_vous = rendez_vous_domain.rendez_vous_de(session, usager.id)
        if not rendez_vous:
            return UsagerData(usager.nir_index, None)
        # The contract answers a JSON array.
        return UsagerData(usager.nir_index, [rendez_vous_domain.as_contract(rdv) for rdv in rendez_vous])

    def _resolve(self, session: Session, caller: Caller, ref: str) -> tuple[Usager, Organisation]:
        usager = attached_usager(session, caller, ref)
        if usager is None:
            raise Refused(RefusalKind.UNKNOWN, "USAGER_INCONNU", "L'usager désigné par le jeton n'existe plus")
        organisation = caller_organisation(session, caller)
        if organisation is None:  # attached_usager has refused already; kept for the type checker
            raise UsagerNotAttached
        return usager, organisation
