"""connexion, with the set-up it redoes on every request done once per operation.

connexion builds, on every request, things that depend only on the operation's spec, which does
not change while the app runs: the handler's signature, its decorators and URI parser, the
request validators (parameters, media types, body), several media-type tables to look up the
body's definition, and the keyword arguments of a handler that only takes the body. Each object
built here keeps only that spec and its options (no request's state), so one built at the
operation's first request serves every later one. What is validated, in what order and with which
errors, and what the handler receives, are connexion's own: these are its classes, called the
same way. ``install()`` patches connexion's module-level functions once per process; ``ours()``
swaps connexion's middlewares for the ones here in the app's middleware list.

Each measured by ``bench/run.py`` and a profile (issue #12): the signatures were a tenth of a
call's CPU; the validators' and the body definitions' set-up about 5 %.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import connexion.decorators.parameter as connexion_parameter
import connexion.security as connexion_security
import connexion.utils as connexion_utils
from connexion import utils
from connexion.apps.asynchronous import AsyncOperation
from connexion.context import operation as current_operation
from connexion.context import receive as connexion_receive
from connexion.context import scope as connexion_scope
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import AsyncParameterDecorator
from connexion.http_facts import FORM_CONTENT_TYPES
from connexion.lifecycle import ConnexionRequest
from connexion.middleware.request_validation import (
    RequestValidationAPI,
    RequestValidationMiddleware,
    RequestValidationOperation,
)
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.operations import AbstractOperation, OpenAPIOperation
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from api.validation import PARSED_BODY


def install() -> None:
    """Patch connexion's per-request look-ups (once per process)."""
    _remember_signatures()
    _decorate_once()
    _remember_body_definitions()


def ours(middleware: Any) -> Any:
    """connexion's middleware, or ours in its place: the same work, its set-up done once."""
    if middleware is SwaggerUIMiddleware:
        return SpecPages
    if middleware is RequestValidationMiddleware:
        return PreparedValidationMiddleware
    return middleware


def _remember_signatures() -> None:
    """connexion inspects the signature of the security function and of the handler on every
    call (``inspect.signature``: a tenth of a call's CPU); a function's signature never
    changes, so each is inspected once."""
    inspect_arguments = getattr(connexion_utils.inspect_function_arguments, "__wrapped__", None)
    if inspect_arguments is not None:
        return  # already done in this process
    cached = functools.lru_cache(maxsize=4096)(connexion_utils.inspect_function_arguments)

    @functools.wraps(connexion_utils.inspect_function_arguments)
    def inspect_function_arguments(function: Callable[..., Any]) -> tuple[list[str], bool]:
        arguments, has_kwargs = cached(function)
        return list(arguments), has_kwargs  # a copy: callers own the list they get

    for module in (connexion_utils, connexion_security, connexion_parameter):
        module.inspect_function_arguments = inspect_function_arguments


_UNPARSED = object()


class _BodyOnlyParameterDecorator(AsyncParameterDecorator):
    """connexion's parameter decorator, which hands a handler taking nothing but the request's
    JSON body that body alone, without gathering the path, query, form and file arguments
    connexion would then leave out (``get_arguments`` keeps, of those, only what the handler
    names, and path parameters, which such an operation cannot have: its handler could not take
    them). Any other handler or request goes through connexion's own."""

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        general = super().__call__(function)
        arguments, has_kwargs = connexion_utils.inspect_function_arguments(
            connexion_parameter.unwrap_decorators(function)
        )
        if has_kwargs or len(arguments) != 1:
            return general
        (only,) = arguments
        sanitize = functools.lru_cache(maxsize=MAX_REMEMBERED)(self.sanitize_fn)

        @functools.wraps(function)
        async def wrapper(request: ConnexionRequest) -> Any:
            spec = current_operation._get_current_object()
            mimetype = request.mimetype
            if (
                mimetype in FORM_CONTENT_TYPES
                or not spec.is_request_body_defined
                or spec.method.upper() == "TRACE"
                or sanitize(spec.body_name(request.content_type)) != only
            ):
                return await general(request)
            # The body as request validation parsed it, when it did (``api.validation``).
            body = request.scope.pop(PARSED_BODY, _UNPARSED)
            if body is _UNPARSED:
                body = await request.get_body()
            return await function(
                **{only: connexion_parameter._get_body_argument_json(body, operation=spec, content_type=mimetype)}
            )

        return wrapper


class _DecoratedOnce(StarletteDecorator):
    """connexion's handler decorators (parameters in, response out), built once per operation:
    connexion's own builds them, and the operation's URI parser, on every call."""

    @property
    def _parameter_decorator_cls(self) -> type[AsyncParameterDecorator]:
        return _BodyOnlyParameterDecorator

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        built: tuple[Callable[..., Any], Any] | None = None

        @functools.wraps(function)
        async def wrapper(*_args: Any, **_kwargs: Any) -> Any:
            nonlocal built
            if built is None:
                # On the first call: the URI parser reads the operation from connexion's
                # context, which only a request sets (an operation object serves one operation).
                built = (self.decorate(function), self.uri_parser)
            decorated, uri_parser = built
            request = self.framework.get_request(
                uri_parser=uri_parser, scope=connexion_scope, receive=connexion_receive
            )
            return await decorated(request)

        return wrapper


def _decorate_once() -> None:
    if getattr(AsyncOperation, "_relais_decorated_once", False):
        return  # already done in this process

    def fn(self: AsyncOperation) -> Callable[..., Any]:
        decorated = self.__dict__.get("_relais_fn")
        if decorated is None:
            decorator = _DecoratedOnce(pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)
            decorated = self.__dict__["_relais_fn"] = decorator(self._fn)
        return decorated

    AsyncOperation.fn = property(fn)
    AsyncOperation._relais_decorated_once = True


class SpecPages(SwaggerUIMiddleware):
    """connexion's middleware serving each API's ``openapi.json``/``.yaml`` and Swagger UI
    (``ui/``), which routes every request through a mount per API before passing it on. A path
    that names none of its pages (nor an API's base path, which it redirects to ``base/``) is
    passed on at once: the same outcome, without matching the mounts."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self._bases: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._bases is None:
                self._bases = frozenset(route.path for route in self.router.routes if isinstance(route, Mount))
            path: str = scope["path"]
            if "/ui" not in path and "openapi." not in path and path.rstrip("/") not in self._bases:
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


# A body's validator by (media type, encoding); None: no body schema or no validator for it.
_BodyValidators = dict[tuple[str, str], Any]
# Media types and encodings come from the caller: past this many per operation, what is not
# remembered yet is built at each request, as connexion does (memory stays bounded).
MAX_REMEMBERED = 16


class PreparedValidationOperation(RequestValidationOperation):
    """``RequestValidationOperation`` whose validators are built at the first request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parameter_validator: Any = None
        self._accepted: set[str] = set()
        self._body_validators: _BodyValidators = {}
        # (mime type, encoding) by Content-Type header as sent (None: none sent).
        self._content_types: dict[bytes | None, tuple[str, str]] = {}

    def _content_type(self, headers: list[tuple[bytes, bytes]]) -> tuple[str, str]:
        """``extract_content_type``, parsed once per header value: connexion's looks the header
        up and splits it on every call, at a cost noticeable on the hot path."""
        sent = next((value for name, value in headers if name.lower() == b"content-type"), None)
        known = self._content_types.get(sent)
        if known is None:
            known = self.extract_content_type([(b"content-type", sent)] if sent is not None else [])
            if len(self._content_types) < MAX_REMEMBERED:
                self._content_types[sent] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parameters = self._parameter_validator
        if parameters is None:
            parameters = self._parameter_validator = self._build_parameter_validator()
        parameters.validate(scope)

        mime_type, encoding = self._content_type(scope["headers"])
        if mime_type not in self._accepted:
            self.validate_mime_type(mime_type)  # raises for a media type the spec does not take
            if len(self._accepted) < MAX_REMEMBERED:
                self._accepted.add(mime_type)

        key = (mime_type, encoding)
        try:
            validator = self._body_validators[key]
        except KeyError:
            validator = self._build_body_validator(mime_type, encoding)
            if len(self._body_validators) < MAX_REMEMBERED:
                self._body_validators[key] = validator
        if validator is not None:
            receive, scope = await validator.wrap_receive(receive, scope=scope)

        await self.next_app(scope, receive, send)

    def _build_parameter_validator(self) -> Any:
        operation = self._operation
        uri_parser = operation._uri_parser_class(operation.parameters, operation.body_definition())
        return self._validator_map["parameter"](
            operation.parameters,
            uri_parser=uri_parser,
            strict_validation=self.strict_validation,
            security_query_params=self.security_query_params,
        )

    def _build_body_validator(self, mime_type: str, encoding: str) -> Any:
        operation = self._operation
        schema = operation.body_schema(mime_type)
        if not schema:
            return None
        try:
            body_validator = self._validator_map["body"][mime_type]
        except KeyError:
            return None  # connexion skips validation too (and logs it at each request)
        return body_validator(
            schema=schema,
            required=operation.request_body.get("required", False),
            nullable=utils.is_nullable(operation.body_definition(mime_type)),
            encoding=encoding,
            strict_validation=self.strict_validation,
            uri_parser=operation.uri_parser_class(operation.parameters, operation.body_definition()),
        )


class PreparedValidationAPI(RequestValidationAPI):
    def make_operation(self, operation: AbstractOperation) -> RequestValidationOperation:
        return PreparedValidationOperation(
            self.next_app,
            operation=operation,
            strict_validation=self.strict_validation,
            validator_map=self.validator_map,
        )


class PreparedValidationMiddleware(RequestValidationMiddleware):
    """connexion's request validation middleware, with ``PreparedValidationOperation``."""

    api_cls = PreparedValidationAPI


def _remember_body_definitions() -> None:
    """``OpenAPIOperation.body_definition`` builds a media-type table at each call (several per
    request) to find the same dict of the spec (it returns the spec's own dict, completed in
    place): each operation remembers it per media type."""
    original = OpenAPIOperation.body_definition
    if getattr(original, "_relais_remembered", False):
        return  # already done in this process

    @functools.wraps(original)
    def body_definition(self: OpenAPIOperation, content_type: str | None = None) -> dict[str, Any]:
        known: dict[str | None, dict[str, Any]] = self.__dict__.setdefault("_relais_body_definitions", {})
        found = known.get(content_type)
        if found is None:
            found = known[content_type] = original(self, content_type)
        return found

    body_definition._relais_remembered = True  # type: ignore[attr-defined]
    OpenAPIOperation.body_definition = body_definition
