"""The outermost Relais middleware: request id, audit-before-response, log line, metrics.

The response of an audited call is held back until its audit event is committed together
with the request's own unit of work: its status line and first byte leave only after that
(a streamed body, such as an audit export, then flows without being buffered). If the event
cannot be written the caller gets a 500 in its API's error format and no data: Relais fails
closed rather than answer untraced.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.context import RequestState, bind_request, unbind_request
from api.resolver import contract_operation_id
from api.services import Services
from audit.journal import decision_for
from relais.core.auditing import AuditDraft
from relais.core.observability import safe_exception_fields

log = structlog.get_logger("relais.request")

# The admin APIs: every call, reads included, is audited like a partner call.
ADMIN_PREFIXES = ("/relais/habilitations/", "/relais/audit/", "/relais/connecteurs/", "/relais/connexion/")
AUDITED_PREFIXES = ("/partenaire/", "/connexion/", "/relais/alimentation/", *ADMIN_PREFIXES)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_AGENT_HEADERS = {
    b"pa-nom-agent": "agent_nom",
    b"pa-prenom-agent": "agent_prenom",
    b"pa-identifiant-agent": "agent_identifiant",
}
# (status, headers, body) of the answer sent when the audit event cannot be written.
FailureResponse = Callable[[str], tuple[int, list[tuple[bytes, bytes]], bytes]]


class RequestPipeline:
    def __init__(self, app: ASGIApp, services: Services, failure_response: FailureResponse) -> None:
        self.app = app
        self.services = services
        self.failure_response = failure_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = _request_id(headers)
        path: str = scope["path"]
        state = RequestState(
            request_id=request_id,
            services=self.services,
            audit=AuditDraft(channel=_channel(path), operation=path),
        )
        _record_agent_headers(state.audit, headers)
        # connexion's router records the matched operation in scope["extensions"] through a
        # copy of the scope: the dict must exist beforehand for us to see it (not every ASGI
        # server provides it).
        scope.setdefault("extensions", {})
        token = bind_request(state)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        answer = _Answer()

        async def forward(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.start = message
                return
            if message["type"] != "http.response.body":
                # Extension messages (e.g. "http.response.debug" of template responses in
                # tests) carry no part of the answer.
                await send(message)
                return
            # Before the first byte of the body leaves: the audit event is committed here.
            if not answer.released:
                await self._release(answer, state, scope, send)
            if not answer.replaced:
                await send(message)

        try:
            try:
                await self.app(scope, receive, forward)
            except Exception as exc:
                log.error("unhandled_error", **safe_exception_fields(exc))
                if not answer.released:
                    answer.start = None
            if not answer.released:
                await self._release(answer, state, scope, send)
                if not answer.replaced:
                    await send({"type": "http.response.body", "body": b""})
        finally:
            if state.has_session:
                await anyio.to_thread.run_sync(_close, state)
            self._observe(state, answer.status, time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")
            unbind_request(token)

    async def _release(self, answer: _Answer, state: RequestState, scope: Scope, send: Send) -> None:
        """Audit the call, then send its status line, or the failure answer in its place.

        A body that streams (an audit export) goes out after this, chunk by chunk; a handler
        that fails mid-stream can then only cut the stream short, its event already says 2xx.
        """
        answer.released = True
        path: str = scope["path"]
        operation = _operation_id(scope)
        if operation:
            state.audit.operation = operation
        failure: list[Message] = []
        if answer.start is None:
            answer.start, failure = self._failure(path)
        audited = operation is not None and path.startswith(AUDITED_PREFIXES)
        if audited and not await self._audit(state, answer.start["status"]):
            answer.start, failure = self._failure(path)
        answer.replaced = bool(failure)
        answer.status = answer.start["status"]
        start = answer.start
        start["headers"] = [*start.get("headers", []), (b"x-request-id", state.request_id.encode())]
        await send(start)
        for message in failure:
            await send(message)

    async def _audit(self, state: RequestState, status: int) -> bool:
        started = time.perf_counter()
        try:
            await anyio.to_thread.run_sync(_commit_with_audit, state, status)
        except Exception as exc:
            self.services.metrics.audit_failures.inc()
            log.error("audit_write_failed", operation=state.audit.operation, **safe_exception_fields(exc))
            return False
        self.services.metrics.audit_latency.observe(time.perf_counter() - started)
        return True

    def _failure(self, path: str) -> tuple[Message, list[Message]]:
        status, headers, payload = self.failure_response(path)
        start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        return start, [{"type": "http.response.body", "body": payload}]

    def _observe(self, state: RequestState, status: int, elapsed: float) -> None:
        operation = state.audit.operation
        metrics = self.services.metrics
        metrics.requests.labels(operation=operation, status=str(status)).inc()
        metrics.latency.labels(operation=operation).observe(elapsed)
        log.info(
            "request",
            operation=operation,
            client_id=state.audit.client_id,
            status=status,
            decision=decision_for(status),
            reason=state.audit.reason,
            duration_ms=round(elapsed * 1000, 2),
        )


@dataclass
class _Answer:
    """The response of one call as it goes through the pipeline."""

    start: Message | None = None
    status: int = 500
    # The status line went out (after the audit event was committed).
    released: bool = False
    # The handler's answer was replaced by the failure answer: its body is dropped.
    replaced: bool = False


def _commit_with_audit(state: RequestState, status: int) -> None:
    session = state.session()
    try:
        if status >= 400:
            # A refused or failed call changes nothing: only its audit event is kept.
            session.rollback()
        state.services.audit_recorder.record(
            session,
            state.audit,
            request_id=state.request_id,
            http_status=status,
            occurred_at=state.services.clock(),
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _close(state: RequestState) -> None:
    state.session().close()


def _request_id(headers: dict[bytes, bytes]) -> str:
    supplied = headers.get(b"x-request-id", b"").decode("latin-1")
    return supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex


def _channel(path: str) -> str:
    if path.startswith("/connexion/"):
        return "oauth"
    if path.startswith("/relais/alimentation/"):
        return "producer-feed"
    if path.startswith(ADMIN_PREFIXES):
        return "admin-api"
    return "partner-api"


def _record_agent_headers(draft: AuditDraft, headers: dict[bytes, bytes]) -> None:
    """Keep what the caller sent, even when invalid, so refusals are attributable too."""
    for header, attribute in _AGENT_HEADERS.items():
        raw = headers.get(header)
        if raw is not None:
            setattr(draft, attribute, raw.decode("utf-8", errors="replace")[:100])


def _operation_id(scope: Scope) -> str | None:
    routing: dict[str, Any] = scope.get("extensions", {}).get("connexion_routing", {})
    operation = routing.get("operation_id")
    return contract_operation_id(str(operation)) if operation else None
