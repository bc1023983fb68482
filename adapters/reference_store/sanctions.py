"""Reference store backend of Gestion des sanctions RSA v1: resolves the usager, runs the rules.

The rules themselves live in the parcours domain (``parcours.sanctions``) so that the producer
feed and the importer apply the same ones outside an HTTP request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from parcours import perimeter
from parcours import sanctions as domain
from parcours.ports import Caller, UsagerData
from parcours.tables import ConsequenceSanction, Usager


class SanctionsStore:
    def __init__(self, session: Callable[[], Session], clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    def _usager(self, caller: Caller, ref: str) -> Usager:
        usager = perimeter.attached_usager(self._session(), caller, ref)
        if usager is None:
            raise domain.refus(domain.C_USAGER)
        return usager

    def detail_manquement(self, caller: Caller, ref: str, identifiant: str) -> UsagerData:
        usager = self._usager(caller, ref)
        consequence = domain.consequence_of(self._session(), usager, identifiant)
        return UsagerData(usager.nir_index, domain.consequence_json(consequence, now=self._clock()))

    def evenement(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._write(caller, ref, body, domain.appliquer_evenement)

    def decision_partenaire(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._write(caller, ref, body, domain.decision_partenaire)

    def demande_radiation(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._write(caller, ref, body, domain.demander_radiation)

    def _write(self, caller: Caller, ref: str, body: dict[str, Any], rule: domain.Rule) -> UsagerData:
        session = self._session()
        usager = self._usager(caller, ref)
        organisation = perimeter.caller_organisation(session, caller)
        consequence = rule(session, usager, organisation, body, agent=caller.agent_identifiant, now=self._clock())
        return UsagerData(usager.nir_index, resultat(consequence))


def resultat(consequence: ConsequenceSanction) -> dict[str, Any]:
    return {
        "codeSortie": domain.C_SUCCES,
        "message": domain.CODES[domain.C_SUCCES],
        "identifiantConsequenceSanction": consequence.id,
        "etatConsequenceSanction": consequence.etat,
    }
