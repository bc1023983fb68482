"""The hub in gateway mode, in front of a fake France Travail served through pytest-httpx.

``gateway`` swaps France Travail gateway backends into the shared test app (as ``hub`` swaps
its database) and registers one pytest-httpx callback that plays the platform: a token
endpoint counting the tokens it issues, and the partner routes each test programs with
``upstream.on(method, path, *answers)``. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from adapters.france_travail.backends import build_gateway_backends
from api.context import current_request
from relais.core.config import Settings
from specs import load_document, served_documents
from tests.support.hub import Hub

API_URL = "https://api-r.ft-qvr.test"
TOKEN_URL = "https://proxyproconnect-r.ft-qvr.test/connexion/oauth2/access_token"
FT_CLIENT_ID = "relais-cd33"
FT_CLIENT_SECRET = "ft-secret-for-tests"
UPSTREAM_REQUEST_ID = "ft-req-7f3a"

Answer = httpx.Response | BaseException | Callable[[httpx.Request], httpx.Response]
PARTNER_BASE = "/partenaire/"


def partner_routes() -> dict[str, tuple[str, re.Pattern[str]]]:
    """operationId -> (method, full path pattern) of every operation served under ``/partenaire/``.

    Read from the specs, so that a gateway test listing operations by hand fails the day an
    operation is added to a contract and not to the list.
    """
    found: dict[str, tuple[str, re.Pattern[str]]] = {}
    for name, _, base in served_documents():
        if not base.startswith(PARTNER_BASE):
            continue
        for path, item in load_document(name)["paths"].items():
            # Each ``{parameter}`` is one path segment; the rest is literal.
            template = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", base + path))
            for method, operation in item.items():
                if isinstance(operation, dict) and "operationId" in operation:
                    found[operation["operationId"]] = (method.upper(), re.compile(template))
    return found


def operation_of(method: str, path: str) -> str | None:
    """The partner operationId that ``method`` on ``path`` (no query) calls; None if none."""
    for operation_id, (expected, pattern) in partner_routes().items():
        if method.upper() == expected and pattern.fullmatch(path):
            return operation_id
    return None


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={
            "content-type": "application/json; charset=utf-8",
            "x-request-id": UPSTREAM_REQUEST_ID,
            **(headers or {}),
        },
    )


@dataclass
class FakeFranceTravail:
    """Routes (method, path) to queued answers; the last answer of a route repeats."""

    routes: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[httpx.Request] = field(default_factory=list)
    token_gate: threading.Event | None = None
    token_entered: threading.Event = field(default_factory=threading.Event)
    expires_in: int = 1499
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(TOKEN_URL):
            return self._token(request)
        with self._lock:
            self.requests.append(request)
            queue = self.routes.get((request.method, request.url.path))
            if not queue:
                return json_answer(404, {"codeHttp": 404, "codeErreur": "NON_PROGRAMME", "message": "route absente"})
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def _token(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.token_requests.append(request)
            number = len(self.token_requests)
        self.token_entered.set()
        if self.token_gate is not None:
            self.token_gate.wait(timeout=10)
        form = dict(httpx.QueryParams(request.content.decode()))
        return json_answer(
            200,
            {
                "access_token": f"ft-access-{number}",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "scope": form.get("scope", ""),
            },
        )

    def calls(self, path: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.path == path]


@dataclass
class Gateway:
    hub: Hub
    upstream: FakeFranceTravail
    sleeps: list[float]
    http: httpx.Client

    def reconfigure(self, **overrides: Any) -> None:
        """Gateway backends built again from settings with ``overrides``."""
        self.hub.services.backends = gateway_backends(self.hub, self.http, self.sleeps, gateway_settings(**overrides))


def gateway_backends(app: Hub, http: httpx.Client, sleeps: list[float], settings: Settings) -> Any:
    return build_gateway_backends(
        settings,
        session=lambda: current_request().session(),
        keys=app.services.keys,
        clock=lambda: current_request().services.clock(),
        jeton_ttl=lambda: current_request().services.jeton_ttl,
        audit=lambda: current_request().audit,
        http=http,
        sleep=sleeps.append,
    )


def gateway_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backend": "france-travail",
        "ft_api_url": API_URL,
        "ft_token_url": TOKEN_URL,
        "ft_client_id": FT_CLIENT_ID,
        "ft_client_secret": FT_CLIENT_SECRET,
        "ft_max_retries": 3,
        "ft_max_retry_wait_seconds": 10,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def gateway(hub: Hub, httpx_mock: HTTPXMock) -> Iterator[Gateway]:
    upstream = FakeFranceTravail()
    httpx_mock.add_callback(upstream.handle, is_reusable=True, is_optional=True)
    sleeps: list[float] = []
    services = hub.services
    reference = services.backends
    http = httpx.Client()
    services.backends = gateway_backends(hub, http, sleeps, gateway_settings())
    try:
        yield Gateway(hub, upstream, sleeps, http)
    finally:
        services.backends = reference
        http.close()
