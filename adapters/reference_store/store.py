"""Reference store backend for Rechercher usager, Informations administratives and Statut usager."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam
from sqlalchemy import select as select_columns
from sqlmodel import Session, col

from parcours.alimentation import CHAMPS_CLOTURE, CHAMPS_DUREES, CHAMPS_INSCRIPTION
from parcours.perimeter import attached_usager, caller_perimetre, departement_of, is_attached
from parcours.ports import Caller, Issue, UsagerData, UsagerMatch
from parcours.tables import Usager
from relais.core.keys import KeySet
from relais.core.nir import NIR_CONTEXT
from relais.core.personal_data import blind_index, decrypt_field

M_CONTRAT_KEYS = ("m_statut", "m_date_effet_statut", *CHAMPS_DUREES, *CHAMPS_INSCRIPTION, *CHAMPS_CLOTURE)


@dataclass(frozen=True)
class _Candidate:
    """An usager a search found: only what the match and the perimeter read of it."""

    id: str
    nir_index: str | None
    top_identite_certifiee: str
    adresses: list[dict[str, Any]]


def _candidates(*where: ColumnElement[bool]) -> Select[tuple[str, str | None, str, Any]]:
    # The search is the partner APIs' hottest read: four columns and at most two rows (two
    # already answer S003), with no ORM object built for them.
    columns = (col(Usager.id), col(Usager.nir_index), col(Usager.top_identite_certifiee), col(Usager.adresses))
    return select_columns(*columns).where(*where).limit(2)


# Built once, their values bound at each search: building a statement costs more than the read.
_BY_NUMERO = _candidates(col(Usager.numero_france_travail) == bindparam("numero"))
_BY_NIR = _candidates(
    col(Usager.nir_index) == bindparam("nir_index"), col(Usager.date_naissance) == bindparam("date_naissance")
)


@dataclass(frozen=True)
class CandidateQuery:
    """A search's statement (one of the module's) and the values it is run with."""

    statement: Select[tuple[str, str | None, str, Any]]
    params: dict[str, Any]


def _outcome(candidates: Sequence[_Candidate], *, attached: bool) -> UsagerMatch:
    if not candidates:
        return UsagerMatch(Issue.NOT_FOUND)
    if len(candidates) > 1:
        return UsagerMatch(Issue.SEVERAL)
    usager = candidates[0]
    if not attached:
        return UsagerMatch(Issue.NOT_ATTACHED, nir_index=usager.nir_index)
    return UsagerMatch(
        Issue.FOUND,
        ref=usager.id,
        nir_index=usager.nir_index,
        identite_certifiee=usager.top_identite_certifiee == "O",
    )


class ReferenceStore:
    """Implements the three foundation ports on the request's own database session."""

    def __init__(self, session: Callable[[], Session], keys: KeySet) -> None:
        self._session = session
        self._keys = keys

    # Rechercher usager ------------------------------------------------------------
    # A search is a statement (``statement_par_*``) and the match of its rows. The handler may
    # run the statement on the event loop itself and ask ``match_without_session`` (no thread
    # hand-off, no pooled connection), or call ``par_*``, which does both in the call's session.

    def statement_par_nir(self, *, nir: str, date_naissance: date) -> CandidateQuery:
        index = blind_index(self._keys, nir)
        return CandidateQuery(_BY_NIR, {"nir_index": index, "date_naissance": date_naissance})

    def statement_par_numero_france_travail(self, *, numero: str) -> CandidateQuery:
        return CandidateQuery(_BY_NUMERO, {"numero": numero})

    def par_nir(self, caller: Caller, *, nir: str, date_naissance: date) -> UsagerMatch:
        return self._match(caller, self.statement_par_nir(nir=nir, date_naissance=date_naissance))

    def par_numero_france_travail(self, caller: Caller, *, numero: str) -> UsagerMatch:
        return self._match(caller, self.statement_par_numero_france_travail(numero=numero))

    def match_without_session(self, caller: Caller, rows: Sequence[Sequence[Any]]) -> UsagerMatch | None:
        """The match of a search statement's rows, read elsewhere, when they decide it alone:
        nobody, several, or one usager living in the territory of the caller's perimeter as
        the security check read it. None when the perimeter needs other rows (an explicit
        attachment, an orientation): then search with ``par_*``."""
        candidates = [_Candidate(*row) for row in rows]
        if len(candidates) == 1:
            perimetre = caller.perimetre
            if perimetre is None or departement_of(candidates[0]) not in perimetre.territoire:
                return None
        return _outcome(candidates, attached=True)

    def _match(self, caller: Caller, query: CandidateQuery) -> UsagerMatch:
        session = self._session()
        candidates = [_Candidate(*row) for row in session.execute(query.statement, query.params).all()]
        attached = len(candidates) == 1 and is_attached(session, caller_perimetre(session, caller), candidates[0])
        return _outcome(candidates, attached=attached)

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
