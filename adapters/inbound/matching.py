"""Which usager a row is about, and why: NIR, then numéro France Travail, then name + birth date.

Duplicate beneficiaries are the editors' old pain (peer-systems §5): a row is matched by the
strongest identifier it carries, the others it carries must agree with the usager found, and
two candidates are never guessed between. The rule that matched is reported and audited, so
that an agent can tell why a line went to that usager. Messages never carry the values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, select

from adapters.inbound.mapping import CellError, parse_date
from parcours.tables import Usager
from relais.core.keys import KeySet
from relais.core.nir import NIR_WITH_KEY_LENGTH, NirError, normalize_nir
from relais.core.personal_data import blind_index

RULE_NIR = "nir"
RULE_NUMERO = "numero_france_travail"
RULE_NOM_NAISSANCE = "nom_prenom_date_naissance"
_NUMERO = re.compile(r"^[0-9]{11}$")


class MatchError(Exception):
    """No usager, or not one usager, for the row (French message without values)."""


@dataclass(frozen=True)
class Identity:
    nir: str | None = None  # 13 characters, key checked
    numero: str | None = None
    nom: str | None = None
    prenom: str | None = None
    date_naissance: date | None = None


@dataclass(frozen=True)
class Match:
    usager: Usager
    rule: str


def identity_of(values: Mapping[str, Any], columns: Mapping[str, str], *, nir_key_required: bool) -> Identity:
    """Read and check the identity columns of a row; raises CellError (NIR key, dates...)."""

    def cell(field: str) -> str | None:
        column = columns.get(field)
        raw = values.get(column) if column else None
        text = str(raw).strip() if raw is not None else ""
        return text or None

    nir = cell("nir")
    if nir is not None:
        column = columns["nir"]
        compact = "".join(nir.split())
        if nir_key_required and len(compact) != NIR_WITH_KEY_LENGTH:
            raise CellError("NIR avec sa clé (15 caractères) attendu", column)
        try:
            nir = normalize_nir(compact)
        except NirError as exc:
            raise CellError(str(exc), column) from None
    numero = cell("numeroFranceTravail")
    if numero is not None and not _NUMERO.match(numero):
        raise CellError("11 chiffres attendus", columns["numeroFranceTravail"])
    naissance = cell("dateNaissance")
    identity = Identity(
        nir=nir,
        numero=numero,
        nom=cell("nom"),
        prenom=cell("prenom"),
        date_naissance=parse_date(columns["dateNaissance"], naissance) if naissance else None,
    )
    if not (identity.nir or identity.numero or (identity.nom and identity.date_naissance)):
        raise CellError("usager non identifié : NIR, numéro France Travail ou nom et date de naissance attendus")
    return identity


def match_usager(session: Session, keys: KeySet, identity: Identity) -> Match:
    if identity.nir is not None:
        found = session.exec(select(Usager).where(Usager.nir_index == blind_index(keys, identity.nir))).all()
        if len(found) > 1:
            raise MatchError(f"{len(found)} usagers portent ce NIR (doublon à résoudre dans Relais)")
        if found:
            return Match(_agrees(found[0], identity, RULE_NIR), RULE_NIR)
    if identity.numero is not None:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == identity.numero)).first()
        if usager is not None:
            if identity.nir is not None and usager.nir_index is not None:
                raise MatchError("le numéro France Travail désigne un usager dont le NIR diffère")
            return Match(_agrees(usager, identity, RULE_NUMERO), RULE_NUMERO)
    if identity.nom is not None and identity.date_naissance is not None:
        candidates = session.exec(select(Usager).where(Usager.date_naissance == identity.date_naissance)).all()
        same = [usager for usager in candidates if _same_person(usager, identity)]
        if len(same) > 1:
            raise MatchError(f"{len(same)} usagers portent ces nom, prénom et date de naissance (doublon à résoudre)")
        if same:
            return Match(same[0], RULE_NOM_NAISSANCE)
    raise MatchError("aucun usager ne correspond (NIR, puis numéro France Travail, puis nom et date de naissance)")


def _agrees(usager: Usager, identity: Identity, rule: str) -> Usager:
    """The other identifiers of the row must not contradict the usager found by ``rule``."""
    if rule == RULE_NIR and identity.numero is not None and usager.numero_france_travail != identity.numero:
        raise MatchError("le NIR et le numéro France Travail désignent des usagers différents")
    if identity.date_naissance is not None and usager.date_naissance != identity.date_naissance:
        raise MatchError("la date de naissance diffère de celle de l'usager trouvé")
    return usager


def _same_person(usager: Usager, identity: Identity) -> bool:
    names = {_fold(usager.nom), _fold(usager.nom_correspondance)}
    if _fold(identity.nom) not in names:
        return False
    if identity.prenom is None:
        return True
    return _fold(identity.prenom) in {_fold(usager.prenom), _fold(usager.prenom_correspondance)}


def _fold(text: str | None) -> str:
    """Upper case, without accents, hyphens, apostrophes or double spaces: LEFÈVRE-D'ARC = lefevre d arc."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(re.sub(r"[-'’.]", " ", bare).upper().split())
