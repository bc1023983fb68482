"""Feed formats: how an editor's columns (or JSON fields) become Relais import records.

A format is a JSON file (``formats/<name>.json``, or the directory named by
``RELAIS_INBOUND_FORMATS_DIR``)::

    {
      "nom": "decisions-orientation",
      "description": "...",
      "enregistrement": "orientation",          # a record type of parcours/records.py
      "separateur": ";", "encodage": "utf-8",   # CSV only
      "identite": {"nir": "NIR", "numeroFranceTravail": "IDENTIFIANT_FT",
                   "nom": "NOM", "prenom": "PRENOM", "dateNaissance": "DATE_NAISSANCE"},
      "colonnes": {"PARCOURS": {"champ": "parcours", "obligatoire": true},
                   "DATE_DECISION": {"champ": "decision.date_decision", "type": "date"}},
      "constantes": {"etat": "OUVERT"}
    }

``champ`` is a dotted path in the record's ``data``; types are ``texte`` (default), ``date``
(AAAA-MM-JJ or JJ/MM/AAAA), ``date-heure`` (ISO 8601, or JJ/MM/AAAA HH:MM as French Excel
writes it; without an offset, the time is France's), ``entier`` and ``booleen`` (O/N, oui/non,
1/0, true/false). An empty cell is absent. The record is then checked by the import schema
itself (``specs/import-v1.schema.json``), so a format cannot let through what ``relais
import`` would refuse. Messages name columns, never values; every problem of a row is
reported at once (``CellErrors``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from relais.core.french_dates import PARIS

FORMATS_DIR = Path(__file__).parent / "formats"
IDENTITY_FIELDS = ("nir", "numeroFranceTravail", "nom", "prenom", "dateNaissance")
TYPES = ("texte", "date", "date-heure", "entier", "booleen")
# Record types a feed may carry (parcours.records' types), for usagers Relais already knows.
FEED_RECORD_TYPES = ("orientation", "rendez-vous", "contrat-engagement", "manquement")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_FRENCH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# « 15/01/2027 10:30 », « 15/01/2027 10h30 », « 15/01/2027 10:30:00 »: French Excel's exports.
_FRENCH_MOMENT = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T]+(\d{1,2})[:hH](\d{2})(?::(\d{2}))?$")
# A time written without an offset is the time on the wall of a French office.
_TRUE = frozenset({"o", "oui", "1", "true", "vrai", "y", "yes"})
_FALSE = frozenset({"n", "non", "0", "false", "faux", "no"})


class FormatError(Exception):
    """The format file itself is wrong (French message)."""


class CellError(Exception):
    """A value does not fit its column (French message naming the column, not the value).

    ``column`` is the CSV column concerned (None for the row as a whole), ``reason`` the
    problem alone; ``str()`` joins them, as the command line prints it.
    """

    def __init__(self, reason: str, column: str | None = None) -> None:
        super().__init__(f"colonne {column} : {reason}" if column else reason)
        self.reason = reason
        self.column = column


class CellErrors(Exception):
    """Every problem of one row, so that a file is fixed in one go; ``data``: the cells that were fine."""

    def __init__(self, errors: list[CellError], data: dict[str, Any]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors
        self.data = data


@dataclass(frozen=True)
class Column:
    champ: str
    type: str = "texte"
    obligatoire: bool = False


@dataclass(frozen=True)
class FeedFormat:
    nom: str
    enregistrement: str
    identite: Mapping[str, str]
    colonnes: Mapping[str, Column]
    constantes: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    separateur: str = ";"
    encodage: str = "utf-8"
    # A NIR without its key cannot be checked: files must carry the 15 characters by default.
    nir_cle_obligatoire: bool = True

    @property
    def known_columns(self) -> frozenset[str]:
        return frozenset(self.identite.values()) | frozenset(self.colonnes)

    def data(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The record's ``data`` (without the usager) from one row; raises CellErrors (all of them)."""
        data: dict[str, Any] = {}
        errors: list[CellError] = []
        for path, value in self.constantes.items():
            _put(data, path, value)
        for name, column in self.colonnes.items():
            raw = values.get(name)
            if _empty(raw):
                if column.obligatoire:
                    errors.append(CellError("valeur obligatoire", name))
                continue
            try:
                _put(data, column.champ, convert(name, column.type, raw))
            except CellError as error:
                errors.append(error)
        if errors:
            raise CellErrors(errors, data)
        return data

    def column_of(self, path: str) -> str | None:
        """The CSV column that fills the record field ``path`` (dotted), or the nearest parent's."""
        by_field = {column.champ: name for name, column in self.colonnes.items()}
        parts = path.split(".")
        while parts:
            found = by_field.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None


def convert(name: str, kind: str, raw: Any) -> Any:
    text = raw.strip() if isinstance(raw, str) else raw
    if kind == "texte":
        return str(text)
    if kind == "entier":
        if isinstance(text, bool):
            raise CellError("nombre entier attendu", name)
        try:
            return int(text)
        except (TypeError, ValueError):
            raise CellError("nombre entier attendu", name) from None
    if kind == "booleen":
        if isinstance(text, bool):
            return text
        lowered = str(text).lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise CellError("O ou N attendu", name)
    if kind == "date":
        return parse_date(name, str(text)).isoformat()
    return parse_moment(name, str(text)).isoformat()


def parse_moment(name: str, text: str) -> datetime:
    """A date and time: ISO 8601, or French (JJ/MM/AAAA HH:MM); without an offset, Paris time."""
    french = _FRENCH_MOMENT.match(text)
    try:
        if french:
            day, month, year, hour, minute, second = (int(part or 0) for part in french.groups())
            moment = datetime(year, month, day, hour, minute, second)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CellError("date et heure attendues (JJ/MM/AAAA HH:MM ou AAAA-MM-JJTHH:MM+01:00)", name) from None
    # fold=0: an ambiguous autumn hour is read as the first one, as a person means it.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=PARIS)


def parse_date(name: str, text: str) -> date:
    match = _FRENCH_DATE.match(text)
    try:
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
        if re.match(r"^\d{4}-\d{2}-\d{2}$", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise CellError("date JJ/MM/AAAA ou AAAA-MM-JJ attendue", name)


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    target = data
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


# Loading ----------------------------------------------------------------------------------


def load_format(name: str, extra_dir: Path | None = None) -> FeedFormat:
    """The format ``name``: from ``extra_dir`` (a département's own) first, then the shipped ones."""
    if not _NAME.match(name):
        raise FormatError(f"nom de format invalide : « {name} » (minuscules, chiffres et tirets)")
    for directory in (extra_dir, FORMATS_DIR):
        if directory is not None and (directory / f"{name}.json").is_file():
            return _load(directory / f"{name}.json")
    raise FormatError(f"format inconnu : « {name} » ; formats disponibles : {', '.join(available_formats(extra_dir))}")


def available_formats(extra_dir: Path | None = None) -> list[str]:
    names = {path.stem for path in FORMATS_DIR.glob("*.json")}
    if extra_dir is not None and extra_dir.is_dir():
        names |= {path.stem for path in extra_dir.glob("*.json")}
    return sorted(names)


@cache
def _load(path: Path) -> FeedFormat:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(f"format {path.name} illisible : {type(exc).__name__}") from None
    return parse_format(raw, path.stem)


def parse_format(raw: Any, name: str) -> FeedFormat:
    if not isinstance(raw, dict):
        raise FormatError(f"format {name} : objet JSON attendu")
    record = raw.get("enregistrement")
    if record not in FEED_RECORD_TYPES:
        raise FormatError(f"format {name} : enregistrement parmi {', '.join(FEED_RECORD_TYPES)} attendu")
    identite = raw.get("identite") or {}
    if not isinstance(identite, dict) or set(identite) - set(IDENTITY_FIELDS) or not identite:
        raise FormatError(f"format {name} : identite doit associer {', '.join(IDENTITY_FIELDS)} à des colonnes")
    colonnes: dict[str, Column] = {}
    for column, spec in (raw.get("colonnes") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("champ"), str):
            raise FormatError(f"format {name} : colonne {column} sans champ")
        kind = spec.get("type", "texte")
        if kind not in TYPES:
            raise FormatError(f"format {name} : colonne {column}, type parmi {', '.join(TYPES)} attendu")
        if spec["champ"] == "numeroFranceTravail":
            raise FormatError(f"format {name} : le numéro France Travail se déclare dans identite")
        colonnes[column] = Column(champ=spec["champ"], type=kind, obligatoire=bool(spec.get("obligatoire", False)))
    if set(colonnes) & set(identite.values()):
        raise FormatError(f"format {name} : une colonne ne peut être à la fois d'identité et de données")
    return FeedFormat(
        nom=str(raw.get("nom") or name),
        enregistrement=record,
        identite=dict(identite),
        colonnes=colonnes,
        constantes=dict(raw.get("constantes") or {}),
        description=str(raw.get("description") or ""),
        separateur=str(raw.get("separateur") or ";"),
        encodage=str(raw.get("encodage") or "utf-8"),
        nir_cle_obligatoire=bool(raw.get("nir_cle_obligatoire", True)),
    )
