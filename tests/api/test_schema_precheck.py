"""The Rust pre-check never lets through what jsonschema would refuse (``api.schema_precheck``).

Every request schema of every spec (parameters and JSON bodies, as connexion resolves them) is
tried with generated values: whenever the pre-check says valid, jsonschema, with connexion's
Draft 4 request validator and its format checker, must say valid too. Schemas the pre-check
cannot vouch for have none, and a request it cannot read is left to jsonschema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from connexion.json_schema import Draft4RequestValidator
from connexion.spec import Specification
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from api.schema_precheck import precheck
from specs import SPECS_DIR, api_specs

# What slips through one checker and not the other: a trailing newline (Python's `$`), digits
# of other scripts, lone surrogates, control characters, impossible or compact dates, pipes,
# blanks, big numbers.
TRICKY_TEXT = [
    "\x1f",
    "\x1c",
    "\u00a0",
    "\u2028",
    "",
    " ",
    "Martin",
    "Martin\n",
    "12345678",
    "12345678\n",
    "١٢٣٤٥٦٧٨",
    "a|b",
    "\ud800",
    "\x00",
    "2024-01-01",
    "2024-02-30",
    "20240101",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01t00:00:00z",
    "a@b",
    "x" * 300,
]
SCALARS = st.one_of(
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)


def _request_schemas() -> Iterator[tuple[str, dict[str, Any], Any]]:
    for name in api_specs():
        spec = Specification.load(SPECS_DIR / name)
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                for parameter in operation.get("parameters", []):
                    if "schema" in parameter:
                        yield f"{name} {method} {path} {parameter['name']}", parameter["schema"], Draft4Validator
                for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                    if "json" in media_type and "schema" in content:
                        yield f"{name} {method} {path} body", content["schema"], Draft4RequestValidator


SCHEMAS = list(_request_schemas())


def _values_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values shaped like the schema (its properties, its examples) or not at all."""
    properties = schema.get("properties") or {}
    leaves: st.SearchStrategy[Any] = SCALARS
    examples = [each["example"] for each in properties.values() if isinstance(each, dict) and "example" in each]
    if "example" in schema:
        examples.append(schema["example"])
    if examples:
        leaves = st.one_of(st.sampled_from(examples), leaves)
    shaped = st.fixed_dictionaries(
        {}, optional={key: st.one_of(leaves, st.lists(leaves, max_size=3)) for key in properties}
    )
    return st.one_of(shaped, leaves, st.lists(leaves, max_size=3))


def test_the_specs_request_schemas_were_found_and_most_have_a_precheck() -> None:
    assert len(SCHEMAS) > 50
    with_precheck = [label for label, schema, _ in SCHEMAS if precheck(schema) is not None]
    # The agent headers and Rechercher usager's bodies at least: the hot path.
    assert any("rechercher-usager" in label and "pa-nom-agent" in label for label in with_precheck)
    assert any("rechercher-usager" in label and "body" in label for label in with_precheck)


@pytest.mark.parametrize(("label", "schema", "checker"), SCHEMAS, ids=[label for label, _, _ in SCHEMAS])
def test_what_the_precheck_accepts_jsonschema_accepts(label: str, schema: dict[str, Any], checker: Any) -> None:
    quick = precheck(schema)
    if quick is None:
        return  # jsonschema alone decides for this schema
    reference = checker(schema, format_checker=Draft4Validator.FORMAT_CHECKER)

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(_values_for(schema))
    def agree(value: Any) -> None:
        if quick(value):
            assert reference.is_valid(value), f"{label}: the pre-check let {value!r} through"

    agree()
    for value in TRICKY_TEXT:
        if quick(value):
            assert reference.is_valid(value), f"{label}: the pre-check let {value!r} through"


@pytest.mark.parametrize(
    "schema",
    [
        {"not": {"type": "string", "format": "date"}},
        {"oneOf": [{"type": "string"}, {"type": "string", "format": "date"}]},
        {"type": "string", "format": "uri"},
        {"type": "object", "properties": {"a": {"type": "string", "x-extension": True}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=a)b\\Z"}}},
        {"$ref": "#/components/schemas/X"},
        # Python's \s takes 0x1C-0x1F, Rust's does not (the agent identifier's pattern).
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[^|]*[^|\\s][^|]*$"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?i)^abc$"}}},
    ],
)
def test_no_precheck_where_rust_could_be_more_lenient_or_cannot_read_the_schema(schema: dict[str, Any]) -> None:
    assert precheck(schema) is None


def test_values_rust_cannot_read_are_left_to_jsonschema() -> None:
    quick = precheck({"type": "object", "properties": {"a": {"type": "string"}}})
    assert quick is not None
    # Rust raises on these (a lone surrogate it cannot encode, a key that is not text): the
    # pre-check answers "not vouched for", never an error, and jsonschema decides.
    assert quick({1: "a"}) is False
    text = precheck({"type": "string", "format": "date"})
    assert text is not None
    assert text("\ud800") is False


PLAIN_TEXT = [
    # Python's \s takes 0x1C-0x1F, Rust's does not (the agent identifier's pattern).
    {"type": "string", "maxLength": 100, "pattern": "^[^|]*[^|\\s][^|]*$"},
    {"type": "string", "pattern": "(?i)^abc$"},
    {"type": "string", "pattern": "(?<=a)b\\Z", "minLength": 2},
    {"type": "string", "maxLength": 100, "pattern": "^[^|]+$"},
    {"type": "string"},
]


@pytest.mark.parametrize("schema", PLAIN_TEXT)
def test_a_plain_text_schema_is_checked_as_jsonschema_checks_it(schema: dict[str, Any]) -> None:
    # Python's own check (whatever the pattern's dialect): the same verdict as jsonschema's,
    # both ways, so that the agent headers skip jsonschema when they are valid.
    quick = precheck(schema)
    assert quick is not None
    reference = Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.text(), st.text(alphabet="ab|\x1c\x1f \n\tABC"), st.integers(), st.none()))
    def agree(value: Any) -> None:
        assert quick(value) is reference.is_valid(value), f"{schema}: {value!r}"

    agree()
    for value in [*TRICKY_TEXT, "a" * 100, "a" * 101, "ab", "abc\n", "ABC", "\x1f", "x\x1f"]:
        assert quick(value) is reference.is_valid(value), f"{schema}: {value!r}"
