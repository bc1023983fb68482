"""Negative fuzzing of every served spec (issue 14): schemathesis' invalid generation, then
bytes that are no JSON and nesting past the parser's limit, each with a valid token and the
agent headers so that they reach as deep as they can. Whatever comes in: never a 5xx.

Bounded (a few examples per operation, derandomised) to stay within seconds on SQLite; the
positive conformance run is tests/api/test_conformance.py.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from schemathesis.generation import GenerationMode

from specs import OPS_SPEC, SPECS_DIR, load_document, served_documents
from tests.support.fuzzing import credentials, first_5xx
from tests.support.hub import Hub

SERVED = served_documents()
MAX_EXAMPLES = 5
# Bytes no JSON parser should see through: not UTF-8, UTF-16 without a declared charset, a
# truncated document, nesting far past api.validation.MAX_JSON_DEPTH (both kinds, and unclosed).
INVALID_BODIES = [
    b'{"a": "\xff\xfe"}',
    b"\xc3\x28\xa0\xa1\xe2\x28\xa1",
    '{"a": 1}'.encode("utf-16"),
    b'{"a": ',
    b"\x00" * 64,
    b"[" * 1000 + b"]" * 1000,
    b'{"a": ' * 1000 + b"1" + b"}" * 1000,
    b"{" * 5000,
    b'{"numeroFranceTravail": ' + b"[" * 200 + b"]" * 200 + b"}",
]


def _json_operations(name: str) -> list[tuple[str, str]]:
    document = load_document(name)
    base = document.get("servers", [{"url": ""}])[0]["url"].rstrip("/")
    found = []
    for path, item in document["paths"].items():
        for method in ("post", "put", "patch", "delete"):
            content = item.get(method, {}).get("requestBody", {}).get("content", {})
            if any("json" in media for media in content):
                found.append((method.upper(), base + re.sub(r"\{[^}]+\}", "CD33", path)))
    return found


# The root API (JWKS, probes, /metrics) is served too, without an openapi.json of its own.
DOCUMENTS = [(name, base) for name, _, base in SERVED] + [(OPS_SPEC, "")]


@pytest.mark.parametrize(("name", "base"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_invalid_input_never_gets_a_5xx(hub: Hub, name: str, base: str) -> None:
    sent_with = credentials(hub, base)
    if name == OPS_SPEC:
        schema = schemathesis.openapi.from_path(SPECS_DIR / OPS_SPEC)
        schema.app = hub.client.app
    else:
        schema = schemathesis.openapi.from_asgi(f"{base}/openapi.json", hub.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert operations, f"no operation in {name}"
    for operation in operations:
        failure = first_5xx(operation, sent_with, max_examples=MAX_EXAMPLES, mode=GenerationMode.NEGATIVE)
        assert failure is None, failure

    for method, url in _json_operations(name):
        for body in INVALID_BODIES:
            response = hub.client.request(
                method, url, content=body, headers={**sent_with, "Content-Type": "application/json"}
            )
            assert response.status_code < 500, (method, url, body[:40], response.status_code, response.text[:200])
            assert 400 <= response.status_code, (method, url, body[:40], response.status_code)
