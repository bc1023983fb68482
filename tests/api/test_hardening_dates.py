"""Dates at the edges of the calendar, in every date and date-time field of every served spec
(issue 14 finding 6): ``0001-01-01T00:00:00+05:00`` is valid RFC 3339 but has no UTC instant
in Python, and ``9999-12-31`` has no next day. Whatever the field, the answer is a refusal in
the called API's format or a success, never a 5xx.

schemathesis generates schema-valid requests for every operation, with the two string formats
drawn only from those edge values, and a valid bearer (plus jeton and agent headers for the
partner APIs) so that the dates reach the handlers and the domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi import formats

from specs import load_document, served_documents
from tests.audit.journal_fixtures import checkpoint
from tests.support.fuzzing import credentials, first_5xx
from tests.support.hub import Hub

SERVED = served_documents()
# Operations left out of the sweep (none today; the consistency proof once answered 500 on a
# size without a signed checkpoint: see the test at the end).
KNOWN: set[tuple[str, str]] = set()
MAX_EXAMPLES = 8
EDGE_INSTANTS = [
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00.000+05:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-05:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999-05:00",
    "9999-12-31T23:59:59",
]
EDGE_DAYS = ["0001-01-01", "9999-12-31"]
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}"
# Operations taking a date, per spec: guards the filter below against a change of layout.
DATED = {
    "alimentation-v1.yaml": 5,
    "audit-v1.yaml": 4,
    "connecteurs-v1.yaml": 2,
    "contrat-engagement-v1.yaml": 4,
    "gestion-sanctions-rsa-v1.yaml": 2,
    "habilitations-v1.yaml": 7,
    "orientation-usager-v1.yaml": 2,
    "rechercher-usager-v2.yaml": 1,
    "rendez-vous-partenaire-v1.yaml": 2,
}


def _date_format(node: dict[str, Any]) -> str | None:
    """``date`` or ``date-time`` for a string schema holding one, by format or by pattern (the
    France Travail contracts spell most of their dates as ``pattern: '^\\d{4}-\\d{2}-\\d{2}...'``)."""
    if node.get("format") in ("date", "date-time"):
        return str(node["format"])
    pattern = node.get("pattern")
    if isinstance(pattern, str) and pattern.startswith(DATE_PATTERN):
        return "date-time" if "T" in pattern else "date"
    return None


def _as_formats(node: Any) -> Any:
    """A copy of a spec fragment whose date patterns are the matching formats instead, so
    that schemathesis draws them from the edge values (the app still checks the patterns)."""
    if isinstance(node, list):
        return [_as_formats(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _as_formats(value) for key, value in node.items()}
    kind = _date_format(node)
    if kind is not None:
        copy.pop("pattern", None)
        copy["format"] = kind
    return copy


def _mentions_dates(node: Any, document: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a spec fragment, its ``$ref``s followed, has a date or date-time string."""
    if isinstance(node, list):
        return any(_mentions_dates(item, document, seen) for item in node)
    if not isinstance(node, dict):
        return False
    if _date_format(node) is not None:
        return True
    reference = node.get("$ref")
    if isinstance(reference, str) and reference not in seen:
        name, _, pointer = reference.partition("#")
        target: Any = load_document(name or document)
        for part in pointer.strip("/").split("/"):
            target = target[part]
        return _mentions_dates(target, name or document, seen | {reference})
    return any(_mentions_dates(value, document, seen) for value in node.values())


def _inputs(operation: dict[str, Any]) -> dict[str, Any]:
    """What a caller sends: the parameters and the request body (not the responses)."""
    return {"parameters": operation.get("parameters", []), "requestBody": operation.get("requestBody", {})}


@pytest.fixture
def edge_formats() -> Iterator[None]:
    """schemathesis draws every ``date-time`` and ``date`` from the edge values; put back after."""
    saved = dict(formats.STRING_FORMATS)
    schemathesis.openapi.format("date-time", st.sampled_from(EDGE_INSTANTS))
    schemathesis.openapi.format("date", st.sampled_from(EDGE_DAYS))
    try:
        yield
    finally:
        formats.STRING_FORMATS.clear()
        formats.STRING_FORMATS.update(saved)


@pytest.mark.parametrize(("name", "base"), [(name, base) for name, _, base in SERVED], ids=[n for n, _, _ in SERVED])
def test_edge_dates_never_get_a_5xx(hub: Hub, edge_formats: None, name: str, base: str) -> None:
    sent_with = credentials(hub, base)
    served = hub.client.get(f"{base}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(_as_formats(served))
    schema.app = hub.client.app
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    failures: list[str] = []
    dated = 0
    for operation in operations:
        if (operation.method.upper(), f"{base}{operation.path}") in KNOWN:
            continue
        if not _mentions_dates(_inputs(operation.definition.raw), name):
            continue
        dated += 1
        failure = first_5xx(operation, sent_with, max_examples=MAX_EXAMPLES)
        if failure is not None:
            failures.append(failure)
    assert failures == []
    assert dated >= DATED.get(name, 0), dated


def test_a_consistency_proof_between_sizes_without_checkpoint_is_no_5xx(hub: Hub) -> None:
    headers = credentials(hub, "/relais/audit/v1")
    # One checkpoint, over every event so far (more than one): none at size 1.
    size = checkpoint(hub.services.database, hub.services.settings, now=hub.clock.now).tree_size
    assert size > 1
    response = hub.client.get("/relais/audit/v1/preuves/coherence", params={"de": 1, "a": size}, headers=headers)
    assert response.status_code == 200, response.text
    assert (response.json()["de"], response.json()["a"]) == (1, size)
    assert response.json()["pointDeControleA"]["treeSize"] == size
