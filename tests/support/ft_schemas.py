"""France Travail's strict response schemas (``tests/api/ft_schemas/``), for any test that
reads a partner answer: what FT's own typed client would refuse, as a list of errors."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parent.parent / "api" / "ft_schemas"


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def ft_errors(name: str, body: Any) -> list[str]:
    """Where ``body`` breaks FT's schema ``name`` (empty when FT's client parses it)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(body)]


def assert_ft_shape(name: str, response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    errors = ft_errors(name, body)
    assert errors == [], errors
    return body
