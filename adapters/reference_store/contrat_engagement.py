"""Reference store backend for Contrat d'engagement v1: resolves the usager, then applies the
parcours domain's rules (``parcours.contrat``) with the agent of the ``pa-*`` headers and the
caller's organisation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from parcours import contrat as contrat_domain
from parcours.perimeter import attached_usager, caller_organisation
from parcours.ports import Caller, Refused, UsagerData
from parcours.tables import ContratEngagement, Usager
from relais.core.refusals import RefusalKind


class ContratEngagementStore:
    def __init__(self, session: Callable[[], Session], clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock

    def lire(self, caller: Caller, ref: str) -> UsagerData:
        session = self._session()
        usager = attached_usager(session, caller, ref)
        if usager is None:
            return UsagerData(None, None)
        contrat = contrat_domain.contrat_de(session, usager.id, now=self._clock())
        return UsagerData(usager.nir_index, None if contrat is None else contrat_domain.as_contract(contrat))

    def signer_premier(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._enregistrer(caller, ref, body, contrat_domain.signer_premier, "date_signature", "dateSignature")

    def refuser_premier(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        """``POST /refuser`` (choix Relais): a first contract, refused."""
        return self._enregistrer(caller, ref, body, contrat_domain.refuser_premier, "date_refus", "dateRefus")

    def refuser(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        # PATCH /refuser takes no organisme nor content, unlike the three calls of ``_enregistrer``.
        session, usager, now = self._resolve(caller, ref)
        contrat = contrat_domain.refuser(
            session,
            usager.id,
            date_refus=contrat_domain.date_acte(body, "dateRefus", now=now),
            agent=_agent(caller),
            now=now,
        )
        return self._answer(usager, contrat)

    def signer(self, caller: Caller, ref: str, body: dict[str, Any]) -> UsagerData:
        return self._enregistrer(caller, ref, body, contrat_domain.signer, "date_signature", "dateSignature")

    def _enregistrer(
        self,
        caller: Caller,
        ref: str,
        body: dict[str, Any],
        operation: Callable[..., ContratEngagement],
        date_param: str,
        date_key: str,
    ) -> UsagerData:
        """Apply a domain operation that records an act with its content: ``POST /signer``,
        ``POST /refuser`` and ``PATCH /signer`` all pass the act's date (``date_key`` of the
        body, as the operation's ``date_param``), the agent, the caller's organisme and the body."""
        session, usager, now = self._resolve(caller, ref)
        contrat = operation(
            session,
            usager.id,
            **{date_param: contrat_domain.date_acte(body, date_key, now=now)},
            agent=_agent(caller),
            organisme=self._organisme(session, caller),
            contenu=body,
            now=now,
        )
        return self._answer(usager, contrat)

    def _resolve(self, caller: Caller, ref: str) -> tuple[Session, Usager, datetime]:
        session = self._session()
        usager = attached_usager(session, caller, ref)
        if usager is None:
            raise Refused(RefusalKind.UNKNOWN, "USAGER_INCONNU", "L'usager désigné par le jeton n'existe plus")
        return session, usager, self._clock()

    @staticmethod
    def _organisme(session: Session, caller: Caller) -> str | None:
        organisation = caller_organisation(session, caller)
        return None if organisation is None else organisation.type

    @staticmethod
    def _answer(usager: Usager, contrat: ContratEngagement) -> UsagerData:
        return UsagerData(usager.nir_index, contrat_domain.as_contract(contrat))


def _agent(caller: Caller) -> dict[str, str]:
    return contrat_domain.agent_of(caller.agent_nom, caller.agent_prenom, caller.agent_identifiant)
