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
(AAAA-MM-JJ or JJ/MM/AAAA), ``date-heure`` (ISO 8601 with offset), ``entier`` and ``booleen``
(O/N, oui/non, 1/0, true/false). An empty cell is absent. The record is then checked by the
import schema itself (``specs/import-v1.schema.json``), so a format cannot let through what
``relais import`` would refuse. Messages name columns, never values.
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

FORMATS_DIR = Path(__file__).parent / "formats"
IDENTITY_FIELDS = ("nir", "numeroFranceTravail", "nom", "prenom", "dateNaissance")
TYPES = ("texte", "date", "date-heure", "entier", "booleen")
# Record types a feed may carry (parcours.records' types), for usagers Relais already knows.
FEED_RECORD_TYPES = ("orientation", "rendez-vous", "contrat-engagement", "manquement")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_FRENCH_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_TRUE = frozenset({"o", "oui", "1", "true", "vrai", "y", "yes"})
_FALSE = frozenset({"n", "non", "0", "false", "faux", "no"})


class FormatError(Exception):
    """The format file itself is wrong (French message)."""


class CellError(Exception):
    """A value does not fit its column (French message naming the column, not the value)."""


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
        """The record's ``data`` (without the usager) from one row; raises CellError."""
        data: dict[str, Any] = {}
        for path, value in self.constantes.items():
            _put(data, path, value)
        for name, column in self.colonnes.items():
            raw = values.get(name)
            if _empty(raw):
                if column.obligatoire:
                    raise CellError(f"colonne {name} obligatoire")
                continue
            _put(data, column.champ, convert(name, column.type, raw))
        return data


def convert(name: str, kind: str, raw: Any) -> Any:
    text = raw.strip() if isinstance(raw, str) else raw
    if kind == "texte":
        return str(text)
    if kind == "entier":
        if isinstance(text, bool):
            raise CellError(f"colonne {name} : nombre entier attendu")
        try:
            return int(text)
        except (TypeError, ValueError):
            raise CellError(f"colonne {name} : nombre entier attendu") from None
    if kind == "booleen":
        if isinstance(text, bool):
            return text
        lowered = str(text).lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise CellError(f"colonne {name} : O ou N attendu")
    if kind == "date":
        return parse_date(name, str(text)).isoformat()
    # date-heure
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise CellError(f"colonne {name} : date et heure ISO 8601 attendues") from None
    if moment.tzinfo is None:
        raise CellError(f"colonne {name} : décalage horaire attendu (ex. +01:00)")
    return moment.isoformat()


def parse_date(name: str, text: str) -> date:
    match = _FRENCH_DATE.match(text)
    try:
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
        if re.match(r"^\d{4}-\d{2}-\d{2}$", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise CellError(f"colonne {name} : date AAAA-MM-JJ ou JJ/MM/AAAA attendue")


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
