"""The import record format (``specs/import-v1.schema.json``): reading JSON Lines, checking a record.

A record is ``{"type": ..., "data": {...}}``. ``relais import`` reads them from a JSON Lines
file (``parse_lines``); the inbound feeds build them from an editor's columns. Both check
each record here (``check_record``) before applying it, so a feed cannot let through what
``relais import`` would refuse. A refusal is a ``DatasetError`` naming the line and the
problem from the schema's side only, never the value (a NIR, a name, a secret).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from parcours.alimentation import nir_reason
from relais.core.nir import NirError, normalize_nir
from relais.core.text import champ_invalide
from specs import SPECS_DIR

SCHEMA_PATH = SPECS_DIR / "import-v1.schema.json"
RECORD_TYPES = (
    "organisation",
    "client",
    "usager",
    "orientation",
    "rendez-vous",
    "contrat-engagement",
    "manquement",
    "subscription",
    "agent",
    "designation",
    "habilitation",
)


class DatasetError(Exception):
    """The file is rejected. ``str()`` is the French message, without any personal data."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"ligne {line} : {reason}")
        self.line = line
        self.reason = reason


def parse_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed record or None for a blank line)."""
    for number, raw in enumerate(lines, start=1):
        try:
            # Decoding line by line gives the exact line of an encoding error; utf-8-sig
            # tolerates the byte order mark some editors write on the first line.
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DatasetError(number, "encodage invalide (UTF-8 attendu)") from None
        if not line.strip():
            yield number, None
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            # The decoder's message only gives a position, never the content.
            raise DatasetError(number, f"JSON invalide (colonne {exc.colno})") from None


def record_problems(kind: str, data: Any) -> list[tuple[str, str]]:
    """Every schema problem of a record's ``data`` at once: (dotted field path, French reason).

    The feeds turn each path back into the CSV column that filled it; reasons never quote values.
    """
    problems: list[tuple[str, str]] = []
    for error in _validator(kind).iter_errors(data):
        path = _path("", error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    problems.append((_path(path, [name]), "valeur obligatoire"))
            continue
        reason = _describe(error, prefix="")
        # _describe names the field first ("champ x.y : ..."): the caller names the column instead.
        problems.append((path, reason.removeprefix(f"champ {path} : ") if path else reason))
    return problems


def canonical_codes(kind: str, data: dict[str, Any]) -> None:
    """Write code values as the schema spells them: « Absent » is ABSENT, « Effectué » EFFECTUE.

    Only a text that matches exactly one allowed value once case, accents and surrounding
    spaces are ignored is rewritten; anything else is left for the schema to refuse.
    """
    schema = _schema()
    _canonical(schema, schema["$defs"][kind], data)


def _canonical(root: dict[str, Any], node: dict[str, Any], data: dict[str, Any]) -> None:
    for name, value in data.items():
        field_schemas = _field_schemas(root, node, name)
        if isinstance(value, dict):
            for field_schema in field_schemas:
                _canonical(root, field_schema, value)
        elif isinstance(value, str):
            allowed = [v for s in field_schemas for v in s.get("enum", ()) if isinstance(v, str)]
            if value not in allowed:
                same = [v for v in allowed if _folded(v) == _folded(value)]
                if len(same) == 1:
                    data[name] = same[0]


def _folded(text: str) -> str:
    bare = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    return bare.strip().casefold()


def _field_schemas(root: dict[str, Any], node: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The schemas a property ``name`` of ``node`` may have to satisfy ($ref and choices followed)."""
    found: list[dict[str, Any]] = []
    for alternative in _alternatives(root, node):
        child = alternative.get("properties", {}).get(name)
        if isinstance(child, dict):
            found.extend(_alternatives(root, child))
    return found


def _alternatives(root: dict[str, Any], node: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    if depth > 8:
        return []
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = root["$defs"].get(ref.removeprefix("#/$defs/"), {})
        return [node, *_alternatives(root, target, depth + 1)]
    found = [node]
    for keyword in ("oneOf", "anyOf", "allOf"):
        for choice in node.get(keyword, ()):
            if isinstance(choice, dict):
                found.extend(_alternatives(root, choice, depth + 1))
    return found


def check_record(line: int, record: Any) -> None:
    """The record conforms to the schema and its texts can be stored; else DatasetError."""
    _validate(line, record)
    champ = champ_invalide(record["data"], "data")
    if champ is not None:
        raise DatasetError(line, f"champ {champ} : caractère non autorisé (nul ou UTF-16 isolé)")


@cache
def _schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def _validator(kind: str | None = None) -> Draft202012Validator:
    """The whole-line validator, or (``kind``) one for a record's ``data`` alone.

    The whole-line schema chooses the record type with a ``oneOf``, whose errors say little;
    validating ``data`` against its own definition yields the precise problem to report.
    """
    schema = _schema()
    if kind is not None:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _validate(line: int, record: Any) -> None:
    if _validator().is_valid(record):
        return
    _check_envelope(line, record)
    error = best_match(_validator(record["type"]).iter_errors(record["data"]))
    if error is None:
        raise DatasetError(line, "enregistrement non conforme au schéma")
    raise DatasetError(line, _describe(error, prefix="data"))


def _check_envelope(line: int, record: Any) -> None:
    """The ``{"type", "data"}`` wrapper, checked by hand for messages clearer than ``oneOf``'s."""
    if not isinstance(record, dict):
        raise DatasetError(line, 'chaque ligne doit être un objet JSON {"type": ..., "data": {...}}')
    for name in ("type", "data"):
        if name not in record:
            raise DatasetError(line, f"champ obligatoire absent : {name}")
    extra = sorted(set(record) - {"type", "data"})
    if extra:
        raise DatasetError(line, f"champ inconnu : {extra[0][:64]}")
    if record["type"] not in RECORD_TYPES:
        raise DatasetError(line, f"champ type : valeur non autorisée (valeurs admises : {', '.join(RECORD_TYPES)})")
    if not isinstance(record["data"], dict):
        raise DatasetError(line, "champ data : type incorrect (attendu : object)")


def _describe(error: ValidationError, prefix: str = "") -> str:
    """A French reason built from the schema side of the error only, never from the value."""
    path = _path(prefix, error.absolute_path)
    where = f"champ {path}" if path else "enregistrement"
    validator, expected = error.validator, error.validator_value
    if validator == "required" and isinstance(error.instance, dict):
        missing = next((name for name in expected if name not in error.instance), "?")
        return f"champ obligatoire absent : {_path(path, [missing])}"
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(name for name in error.instance if name not in known)
        return f"champ inconnu : {_path(path, [unknown[0][:64]])}" if unknown else f"{where} : champ inconnu"
    if path.endswith(".nir") and isinstance(error.instance, str):
        try:
            normalize_nir(error.instance)
        except NirError as exc:
            return nir_reason(exc)
        return "NIR invalide (format)"
    return f"{where} : {_REASONS.get(str(validator), 'valeur non conforme au schéma')}{_allowed(error)}"


_REASONS = {
    "type": "type incorrect",
    "enum": "valeur non autorisée",
    "const": "valeur non autorisée",
    "pattern": "format invalide",
    "format": "format invalide",
    "minLength": "texte trop court",
    "maxLength": "texte trop long",
    "minItems": "liste trop courte",
    "uniqueItems": "liste avec des éléments en double",
    "minimum": "valeur trop petite",
    "oneOf": "valeur non conforme",
}


def _allowed(error: ValidationError) -> str:
    """The schema's expectation (allowed values, type), which is never personal data."""
    if error.validator == "enum":
        # null is how the schema says "may be left empty".
        allowed = [str(value) for value in error.validator_value if value is not None]
        empty = " ou vide" if None in error.validator_value else ""
        return " (valeurs admises : " + ", ".join(allowed) + empty + ")"
    if error.validator == "type":
        expected = error.validator_value
        names = expected if isinstance(expected, list) else [expected]
        return " (attendu : " + " ou ".join(str(name) for name in names) + ")"
    return ""


def _path(prefix: str, parts: Iterable[Any]) -> str:
    path = prefix
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}" if path else str(part)
    return path
