"""Request validation beyond the schemas: what no handler should ever have to think of.

- Text no database can store is a 400 (``StorableJSONBodyValidator``, registered for every
  JSON body of every spec in ``api.app``). The problem's detail ends like jsonschema's
  (`` - 'path'``) so that ``api.errors`` names the field, never its value.
- Connexion builds a jsonschema validator for every body and every parameter of every
  request (a quarter of a request's CPU in the issue #12 profile). ``compiled()`` builds each
  once per schema object and reuses it: the same validator class, format checker and schema,
  so the same errors; only the construction is shared.
- ``InputGuard``, a middleware between connexion's routing and its security check, refuses
  what would otherwise reach a parser or a handler in a shape they cannot take: a duplicated
  agent, jeton or ``Authorization`` header (which copy would the security check, the audit
  event and the domain's history each read?), a body over the size limit (413), a JSON
  operation's body with a missing or non-JSON ``Content-Type`` (415), a declared charset
  other than UTF-8, bytes that are not UTF-8, text that is not JSON, JSON nested deeper than
  any contract needs (400). Each refusal is an ``InputRefused`` that ``api.errors`` answers
  in the called API's format; the pipeline audits it like any refusal of a known operation.
"""

from __future__ import annotations

import codecs
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, ProblemException
from connexion.json_schema import Draft4RequestValidator
from connexion.utils import is_null, is_nullable
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schema_precheck import precheck
from relais.core import agent_headers
from relais.core.jeton import JETON_HEADER
from relais.core.text import champ_invalide
from specs import OPS_SPEC, api_specs, load_document

UNSTORABLE_DETAIL = "caractère non autorisé (nul ou UTF-16 isolé)"
# Headers whose value must be unambiguous: who the agent is, which usager, which client.
SINGLE_HEADERS = (*(name.encode() for name in agent_headers.ALL), JETON_HEADER.encode(), b"authorization")
# No contract nests deeper than a handful of levels; the parsers' recursion must never be reached.
MAX_JSON_DEPTH = 32
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# Compiled validators by (validator class, id(schema)). The entry keeps the schema itself, so
# an id can never be reused by another dict while its entry lives, and a hit is checked by
# identity. Connexion hands the same spec dicts to every request of an operation; the bound
# only matters to a process building many apps (the tests), where old apps' entries age out.
_COMPILED: OrderedDict[tuple[Any, int], tuple[dict[str, Any], Any]] = OrderedDict()
_COMPILED_MAX = 1024
_COMPILED_LOCK = threading.Lock()


def compiled(validator_class: Callable[..., Any], schema: dict[str, Any]) -> Any:
    """The ``validator_class`` validator of ``schema`` (with Draft 4 formats), built once."""
    key = (validator_class, id(schema))
    with _COMPILED_LOCK:
        entry = _COMPILED.get(key)
        if entry is not None and entry[0] is schema:
            _COMPILED.move_to_end(key)
            return entry[1]
    validator = validator_class(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
    with _COMPILED_LOCK:
        _COMPILED[key] = (schema, validator)
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    return validator


# Where ``CompiledParameterValidator`` keeps a request's headers, on connexion's request object.
_HEADERS_SEEN = "_relais_headers"


class CompiledParameterValidator(ParameterValidator):
    """Connexion's parameter checks, with each parameter's schema compiled once."""

    @staticmethod
    def validate_parameter(parameter_type: str, value: Any, param: dict[str, Any], param_name: Any = None) -> Any:
        # Same flow and messages as connexion's; its per-request deepcopy only protected the
        # schema from a validator that never writes to it.
        if is_nullable(param) and is_null(value):
            return None
        if value is not None:
            schema = param.get("schema", param)
            quick = precheck(schema)
            if quick is not None and quick(value):
                return None  # valid for jsonschema too (api.schema_precheck)
            try:
                compiled(Draft4Validator, schema).validate(value)
            except ValidationError as exception:
                return str(exception)
            return None
        if param.get("required"):
            return f"Missing {parameter_type} parameter '{param['name']}'"
        return None

    def validate_header_parameter(self, param: dict[str, Any], request: Any) -> Any:
        # connexion's looks each header parameter up in the whole list of headers; here the
        # list is read once per request (the first value of a name, as Starlette's lookup).
        headers = getattr(request, _HEADERS_SEEN, None)
        if headers is None:
            headers = {}
            for name, value in request.scope["headers"]:
                headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            setattr(request, _HEADERS_SEEN, headers)
        return self.validate_parameter("header", headers.get(param["name"].lower()), param)

    def validate_query_parameter_list(self, request: Any, security_params: Any = None) -> Any:
        # No query string, no parameter beyond the spec's: connexion would parse the empty
        # string and compare anyway (strict validation, on every call).
        if not request.scope.get("query_string"):
            return set()
        return super().validate_query_parameter_list(request, security_params=security_params)


# Where ``StorableJSONBodyValidator`` leaves the JSON body it parsed, in the request's scope, for
# the handler to take instead of parsing it again (``api.connexion_once``).
PARSED_BODY = "relais.parsed_body"


class StorableJSONBodyValidator(JSONRequestBodyValidator):
    async def _parse(self, stream: Any, scope: Scope) -> Any:
        body = await super()._parse(stream, scope=scope)
        # UTF-8 only: the handler's own parse (Starlette's, of the bytes) would read another
        # charset as UTF-8, and must keep doing so.
        if codecs.lookup(self._encoding).name == "utf-8":
            scope[PARSED_BODY] = body
        return body

    @property
    def _validator(self) -> Any:
        return compiled(Draft4RequestValidator, self._schema)

    def _validate(self, body: Any) -> dict[Any, Any] | None:
        quick = precheck(self._schema) if body is not None else None
        # Valid for jsonschema too (api.schema_precheck): connexion's check would return None.
        validated = None if quick is not None and quick(body) else super()._validate(body)
        champ = champ_invalide(body)
        if champ is not None:
            raise BadRequestProblem(detail=f"{UNSTORABLE_DETAIL} - '{champ[:64]}'")
        return validated


def validator_map() -> dict[str, Any]:
    body = MediaTypeDict(dict(VALIDATOR_MAP["body"]))
    body["*/*json"] = StorableJSONBodyValidator
    return {**VALIDATOR_MAP, "parameter": CompiledParameterValidator, "body": body}


class InputRefused(ProblemException):
    """A request refused before any handler: (status, reason code, French message without values)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(status=status, title="Bad Request", detail=message)
        self.reason = reason
        self.message = message


class InputGuard:
    """See the module docstring. ``max_body_bytes()`` answers the limit of the request."""

    def __init__(self, app: ASGIApp, max_body_bytes: Any) -> None:
        self.app = app
        # A callable, so that a test (or a reload) changing the settings takes effect.
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        duplicated = duplicated_header(headers)
        if duplicated:
            raise InputRefused(400, f"header_duplicated:{duplicated}", f"en-tête {duplicated} présent plusieurs fois")
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = int(self.max_body_bytes())
        declared = _header(headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise InputRefused(413, "body_too_large", f"corps de requête trop volumineux ({limit} octets au plus)")
        body = await _read_body(receive, limit)
        if _expects_json(scope):
            check_json_body(_header(headers, b"content-type"), body)
        await self.app(scope, _replay(body, receive), send)


def duplicated_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The first of ``SINGLE_HEADERS`` sent more than once, read from the raw ASGI list
    (Starlette's ``Headers`` would silently pick the first copy, a dict the last)."""
    seen: set[bytes] = set()
    for name, _ in headers:
        lowered = name.lower()
        if lowered in SINGLE_HEADERS:
            if lowered in seen:
                return lowered.decode()
            seen.add(lowered)
    return None


def check_json_body(content_type: str | None, body: bytes) -> None:
    """Raise ``InputRefused`` unless ``body`` is UTF-8 JSON of a bounded depth, declared as JSON.

    An empty body is left to the spec (a required body then gets its own 400).
    """
    if not body:
        return
    media, _, parameters = (content_type or "").partition(";")
    media = media.strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        raise InputRefused(415, "unsupported_media_type", "type de contenu non pris en charge : JSON attendu")
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InputRefused(400, "body_charset", "encodage du corps non pris en charge : UTF-8 attendu")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRefused(400, "body_not_utf8", "corps de requête invalide : UTF-8 attendu") from None
    if _bracket_depth(text) > MAX_JSON_DEPTH:
        raise InputRefused(400, "body_too_deep", f"corps de requête trop imbriqué ({MAX_JSON_DEPTH} niveaux au plus)")
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        raise InputRefused(400, "body_not_json", "corps de requête JSON invalide") from None


def _bracket_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings, without recursion (so before parsing)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away: nothing left to serve.
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InputRefused(413, "body_too_large", f"corps de requête trop volumineux ({limit} octets au plus)")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _expects_json(scope: Scope) -> bool:
    routing: dict[str, Any] = scope.get("extensions", {}).get("connexion_routing", {})
    operation = str(routing.get("operation_id") or "").rpartition(".")[2]
    return (routing.get("api_base_path", ""), operation) in json_operations()


@lru_cache(maxsize=1)
def json_operations() -> frozenset[tuple[str, str]]:
    """(base path, operationId) of every served operation whose request body is JSON."""
    found = set()
    for name in [*api_specs(), OPS_SPEC]:
        document = load_document(name)
        base = document.get("servers", [{"url": ""}])[0]["url"].rstrip("/")
        for path_item in document.get("paths", {}).values():
            for operation in _operations(path_item):
                content = operation.get("requestBody", {}).get("content", {})
                if any("json" in media for media in content):
                    found.add((base, operation["operationId"]))
    return frozenset(found)


def _operations(path_item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for method in ("post", "put", "patch", "delete"):
        if method in path_item:
            yield path_item[method]
