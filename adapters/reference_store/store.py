"""Reference store backend for Rechercher usager, Informations administratives and Statut usager."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlmodel import Session, select

from parcours.alimentation import CHAMPS_CLOTURE, CHAMPS_DUREES, CHAMPS_INSCRIPTION
from parcours.perimeter import attached_usager, caller_organisation, is_attached
from parcours.ports import Caller, Issue, UsagerData, UsagerMatch
from parcours.tables import Usager
from relais.core.keys import KeySet
from relais.core.nir import NIR_CONTEXT
from relais.core.personal_data import blind_index, decrypt_field

M_CONTRAT_KEYS = ("m_statut", "m_date_effet_statut", *CHAMPS_DUREES, *CHAMPS_INSCRIPTION, *CHAMPS_CLOTURE)


class ReferenceStore:
    """Implements the three foundation ports on the request's own database session."""

    def __init__(self, session: Callable[[], Session], keys: KeySet) -> None:
        self._session = session
        self._keys = keys

    # Rechercher usager ------------------------------------------------------------

    def par_nir(self, caller: Caller, *, nir: str, date_naissance: date) -> UsagerMatch:
        index = blind_index(self._keys, nir)
        usagers = self._session().exec(
            select(Usager).where(Usager.nir_index == index, Usager.date_naissance == date_naissance)
        )
        return self._match(caller, usagers.all())

    def par_numero_france_travail(self, caller: Caller, *, numero: str) -> UsagerMatch:
        usagers = self._session().exec(select(Usager).where(Usager.numero_france_travail == numero))
        return self._match(caller, usagers.all())

    def _match(self, caller: Caller, usagers: Sequence[Usager]) -> UsagerMatch:
        if not usagers:
            return UsagerMatch(Issue.NOT_FOUND)
        if len(usagers) > 1:
            return UsagerMatch(Issue.SEVERAL)
        usager = usagers[0]
        session = self._session()
        if not is_attached(session, caller_organisation(session, caller), usager):
            return UsagerMatch(Issue.NOT_ATTACHED, nir_index=usager.nir_index)
        return UsagerMatch(
            Issue.FOUND,
            ref=usager.id,
            nir_index=usager.nir_index,
            identite_certifiee=usager.top_identite_certifiee == "O",
        )

    # Per-usager reads ---------------------------------------------------------------

    def lire(self, caller: Caller, ref: str) -> UsagerData:
        usager = self._attached_usager(caller, ref)
        if usager is None:
            return UsagerData(None, None)
        return UsagerData(usager.nir_index, self._usager_resource(usager))

    def lire_contrat(self, caller: Caller, ref: str) -> UsagerData:
        usager = self._attached_usager(caller, ref)
        if usager is None:
            return UsagerData(None, None)
        if not usager.contrat:
            return UsagerData(usager.nir_index, None)
        # Statut usager's answer has the thirteen keys France Travail's has (les-emplois reads
        # them from its answer), null when the stored status lacks one, and no other.
        return UsagerData(usager.nir_index, {key: usager.contrat.get(key) for key in M_CONTRAT_KEYS})

    def _attached_usager(self, caller: Caller, ref: str) -> Usager | None:
        return attached_usager(self._session(), caller, ref)

    def _usager_resource(self, usager: Usager) -> dict[str, Any]:
        return {
            "numeroFranceTravail": usager.numero_france_travail,
            "etatCivil": {
                "civilite": usager.civilite,
                "nom": usager.nom,
                "prenom": usager.prenom,
                "nomCorrespondance": usager.nom_correspondance,
                "prenomCorrespondance": usager.prenom_correspondance,
                "dateNaissance": usager.date_naissance.isoformat(),
                "nir": decrypt_field(self._keys, usager.nir_chiffre, context=NIR_CONTEXT)
                if usager.nir_chiffre
                else None,
            },
            "adresses": usager.adresses,
            "emails": usager.emails,
            "telephones": usager.telephones,
        }
