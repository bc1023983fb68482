"""A fast first check of request values against the specs' schemas, before jsonschema's.

Every partner call validates its agent headers and its JSON body with jsonschema (Python):
about a tenth of a search's CPU on the event loop. ``jsonschema_rs`` (Rust) answers "valid or
not" some twenty times faster. A value it finds valid is valid for jsonschema too, so
jsonschema is skipped; any other value goes through jsonschema as before, which decides and
words the error. Errors, and which requests pass, are therefore jsonschema's.

That holds only where ``jsonschema_rs`` is never more lenient than jsonschema with connexion's
Draft 4 request validator and its format checker, so the pre-check is used only for schemas
made of the keywords listed in ``_AS_STRICT``, checked on the whole schema before it is used:
- the structural keywords, which both apply alike (``tests/api/test_schema_precheck.py``);
- ``nullable`` and ``readOnly``, which connexion relaxes and ``jsonschema_rs`` ignores (stricter);
- ``format`` only for the formats in ``_FORMATS``, which ``jsonschema_rs`` checks at least as
  strictly (``date`` is stricter: 2024-02-30 and 20240101 are refused);
- ``pattern``: Rust's regular expressions are stricter on ``$`` (no trailing newline) and
  refuse to compile what they do not support (the schema then has no pre-check). Their
  classes (s, d, w and b after a backslash) are not Python's (Python's whitespace class takes the
  control characters 0x1C-0x1F, Rust's does not, as the differential test found), nor are inline
  flags' case rules: a pattern with any of them has no pre-check;
- never ``not`` or ``oneOf``, where a stricter part makes the whole more lenient.

A plain text schema (``type: string`` with lengths and a pattern, nothing else: the agent
headers') gets a check of Python's own instead, whatever its pattern: the very tests jsonschema
makes (``isinstance``, ``len``, ``re.search``) without its walk through the schema's keywords.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import jsonschema_rs

_AS_STRICT = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "allOf",
        "anyOf",
        "format",
        "nullable",
        "readOnly",
        # Annotations: no effect on validity.
        "description",
        "title",
        "example",
        "default",
        "deprecated",
    }
)
_FORMATS = frozenset({"date", "date-time", "email", "password"})
# A plain text schema: checked by ``_plain_text_check``.
_PLAIN_TEXT = frozenset({"type", "minLength", "maxLength", "pattern", "description", "title", "example", "deprecated"})
# Classes and inline flags whose meaning differs between Python's and Rust's regular expressions.
_DIALECT_DEPENDENT = re.compile(r"\\[sSdDwWbB]|\(\?[a-zA-Z]")
# Keywords whose value is a map of names to schemas, or a schema, or a list of schemas.
_NAMED_SCHEMAS = frozenset({"properties"})
_SCHEMA_OR_SCHEMAS = frozenset({"additionalProperties", "items", "allOf", "anyOf"})

Check = Callable[[Any], bool]

# By id(schema), holding the schema so that an id is never reused while its entry lives.
_CHECKS: dict[int, tuple[dict[str, Any], Check | None]] = {}
_MAX_CHECKS = 1024
_LOCK = threading.Lock()


def precheck(schema: dict[str, Any]) -> Check | None:
    """``jsonschema_rs``'s validity test of ``schema``, or None where it could be more lenient."""
    entry = _CHECKS.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    check = _build(schema)
    with _LOCK:
        if len(_CHECKS) >= _MAX_CHECKS:
            _CHECKS.clear()
        _CHECKS[id(schema)] = (schema, check)
    return check


def _build(schema: dict[str, Any]) -> Check | None:
    # connexion adds the spec's components beside a body's schema (for references it has
    # already resolved): not a keyword, and not needed here.
    own = {key: value for key, value in schema.items() if key != "components"}
    if own.get("type") == "string" and set(own) <= _PLAIN_TEXT:
        return _plain_text_check(own)
    if not _as_strict(own):
        return None
    try:
        validator = jsonschema_rs.Draft4Validator(own, validate_formats=True)
    except (ValueError, jsonschema_rs.ValidationError):
        return None  # e.g. a pattern Rust's regular expressions do not take

    def is_valid(value: Any) -> bool:
        try:
            return bool(validator.is_valid(value))
        except Exception:  # what Rust cannot take (a lone surrogate, a non-text key): jsonschema decides
            return False

    return is_valid


def _plain_text_check(schema: dict[str, Any]) -> Check:
    """jsonschema's own tests for ``type: string``, ``minLength``, ``maxLength`` and ``pattern``
    (``re.search``, as its ``pattern`` keyword): the same verdict, for any value."""
    shortest = int(schema.get("minLength", 0))
    longest = schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None

    def is_valid(value: Any) -> bool:
        if not isinstance(value, str) or len(value) < shortest:
            return False
        if longest is not None and len(value) > longest:
            return False
        return pattern is None or pattern.search(value) is not None

    return is_valid


def _as_strict(schema: Any) -> bool:
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for keyword, value in schema.items():
        if keyword not in _AS_STRICT:
            return False
        if keyword == "format" and value not in _FORMATS:
            return False
        if keyword == "pattern" and _DIALECT_DEPENDENT.search(value):
            return False
        if keyword in _NAMED_SCHEMAS and not all(_as_strict(each) for each in value.values()):
            return False
        if keyword in _SCHEMA_OR_SCHEMAS:
            parts = value if isinstance(value, list) else [value]
            if not all(_as_strict(each) for each in parts):
                return False
    return True
