"""French personal identifiers: NIR (numéro de sécurité sociale), numéro France Travail, ISO dates.

Error messages never repeat the value: it is personal data and may end up in logs.
"""

from __future__ import annotations

import re
from datetime import date

NIR_LENGTH = 13
# Encryption context of the NIR column (usager.nir_chiffre): writers and readers must agree.
NIR_CONTEXT = "usager.nir"
NIR_WITH_KEY_LENGTH = 15

# (slice of the 13-char NIR, accepted pattern, message) checked in order so the first
# problem found is the one reported.
_NIR_PARTS: tuple[tuple[slice, re.Pattern[str], str], ...] = (
    (
        slice(0, 1),
        re.compile(r"[123478]"),
        "NIR invalide : le premier caractère doit être 1, 2, 3, 4, 7 ou 8",
    ),
    (slice(1, 3), re.compile(r"[0-9]{2}"), "NIR invalide : année de naissance incorrecte"),
    # INSEE uses 20-42 and 50-99 when the birth month is unknown or the person was registered
    # from a provisional record.
    (
        slice(3, 5),
        re.compile(r"0[1-9]|1[0-2]|[23][0-9]|4[0-2]|[5-9][0-9]"),
        "NIR invalide : mois de naissance incorrect",
    ),
    (slice(5, 7), re.compile(r"[0-9]{2}|2[AB]"), "NIR invalide : département de naissance incorrect"),
    (slice(7, 10), re.compile(r"[0-9]{3}"), "NIR invalide : commune de naissance incorrecte"),
    (slice(10, 13), re.compile(r"[0-9]{3}"), "NIR invalide : numéro d'ordre incorrect"),
)
_KEY_PATTERN = re.compile(r"[0-9]{2}")
_DIGITS_13 = re.compile(r"[0-9]{13}")
# INSEE maps Corsica back to its pre-1976 number before taking the modulus.
_CORSICA_DEPARTMENTS = {"2A": "19", "2B": "18"}
_NUMERO_FRANCE_TRAVAIL = re.compile(r"[0-9]{11}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class NirError(ValueError):
    """Invalid NIR. The message is French and never contains the value."""


def normalize_nir(raw: str) -> str:
    """Return the 13-character NIR (uppercase, without key) or raise :class:`NirError`.

    Accepts spaces anywhere and an optional 2-digit control key, which must then match.
    """
    compact = "".join(raw.split()).upper()
    if len(compact) not in (NIR_LENGTH, NIR_WITH_KEY_LENGTH) or not compact.isascii():
        raise NirError("NIR invalide : format attendu 13 ou 15 caractères")
    nir13, key = compact[:NIR_LENGTH], compact[NIR_LENGTH:]
    for part, pattern, message in _NIR_PARTS:
        if not pattern.fullmatch(nir13[part]):
            raise NirError(message)
    if key:
        if not _KEY_PATTERN.fullmatch(key):
            raise NirError("NIR invalide : la clé de contrôle doit comporter 2 chiffres")
        if key != nir_key(nir13):
            raise NirError("NIR invalide : clé de contrôle incorrecte")
    return nir13


def nir_key(nir13: str) -> str:
    """Control key of a 13-character NIR: 97 - (n mod 97), two digits."""
    department = nir13[5:7].upper()
    digits = nir13[:5] + _CORSICA_DEPARTMENTS.get(department, department) + nir13[7:]
    if not _DIGITS_13.fullmatch(digits):
        raise NirError("NIR invalide : format attendu 13 caractères pour calculer la clé")
    return f"{97 - int(digits) % 97:02d}"


def is_valid_numero_france_travail(value: str) -> bool:
    return _NUMERO_FRANCE_TRAVAIL.fullmatch(value) is not None


def is_valid_iso_date(value: str) -> bool:
    """True for a real calendar date written exactly AAAA-MM-JJ."""
    # The pattern check comes first because date.fromisoformat also accepts forms such as
    # "20240131" or week dates.
    if not _ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
