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
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from specs import OPS_SPEC, SPECS_DIR, load_document, served_documents
from tests.audit.audit_api_support import cssi, rgc
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import AGENT, ALIMENTATION_SCOPES, ALL_SCOPES

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


def _credentials(hub: Hub, base: str) -> dict[str, str]:
    """A valid bearer for the API at ``base`` and, for the partner APIs, a jeton and the agent."""
    if base.startswith("/relais/alimentation/"):
        return {"Authorization": f"Bearer {hub.token('ft-naq', ALIMENTATION_SCOPES)}", **AGENT}
    if base.startswith("/relais/audit/"):
        return cssi(hub)
    if base.startswith("/relais/"):
        return rgc(hub)
    token = hub.token(scope=" ".join(ALL_SCOPES))
    return {"Authorization": f"Bearer {token}", **AGENT, "ft-jeton-usager": hub.jeton(GIRONDE)}


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
    credentials = _credentials(hub, base)
    if name == OPS_SPEC:
        schema = schemathesis.openapi.from_path(SPECS_DIR / OPS_SPEC)
        schema.app = hub.client.app
    else:
        schema = schemathesis.openapi.from_asgi(f"{base}/openapi.json", hub.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert operations, f"no operation in {name}"
    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        def check(case: schemathesis.Case) -> None:
            # Always a valid bearer, so that the invalid input meets the checks past it; the
            # other headers only where the case sent none: an invalid agent header stays invalid.
            sent = {key.lower() for key in (case.headers or {})} - {"authorization"}
            headers = {key: value for key, value in credentials.items() if key.lower() not in sent}
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                response.status_code,
                response.text[:200],
            )

        try:
            check()
        except Unsatisfiable:
            # Nothing to make invalid (no parameter, no body, e.g. GET /moi): the missing or
            # wrong credentials of such calls are the explicit bodies' and the auth tests' business.
            pass

    for method, url in _json_operations(name):
        for body in INVALID_BODIES:
            response = hub.client.request(
                method, url, content=body, headers={**credentials, "Content-Type": "application/json"}
            )
            assert response.status_code < 500, (method, url, body[:40], response.status_code, response.text[:200])
            assert 400 <= response.status_code, (method, url, body[:40], response.status_code)
