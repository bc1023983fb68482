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
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.audit_batches import AuditBatches
from api.context import RequestState, bind_request, unbind_request
from api.errors import ADMIN_PREFIXES, PROBE_OPERATION
from api.resolver import contract_operation_id
from api.services import Services
from audit.journal import decision_for
from relais.core import agent_headers
from relais.core.auditing import AuditDraft
from relais.core.db import wrote
from relais.core.observability import safe_exception_fields
from relais.core.ratelimit import ConcurrencyGate, Overloaded

log = structlog.get_logger("relais.request")

# The admin APIs (api.errors.ADMIN_PREFIXES): every call, reads and probes included, is
# audited like a partner call.
AUDITED_PREFIXES = ("/partenaire/", "/connexion/", "/relais/alimentation/", *ADMIN_PREFIXES)
# The token endpoint takes a database slot only around its own short reads and its audit
# event, never across its argon2 check (``api.partner.auth``).
TOKEN_PATH = "/connexion/oauth2/access_token"  # noqa: S105 (a path, not a secret)
_OVERLOADED_BODY = "Service momentanément surchargé, réessayez dans une seconde".encode()
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_AGENT_HEADERS = {name.encode(): field for name, field in agent_headers.DRAFT_FIELDS.items()}
# (status, headers, body) of the answer sent when the audit event cannot be written.
FailureResponse = Callable[[str], tuple[int, list[tuple[bytes, bytes]], bytes]]


class RequestPipeline:
    def __init__(self, app: ASGIApp, services: Services, failure_response: FailureResponse) -> None:
        self.app = app
        self.services = services
        self.failure_response = failure_response
        self.batches = AuditBatches()

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
        _record_agent_headers(state.audit, scope.get("headers") or [])
        # connexion's router records the matched operation in scope["extensions"] through a
        # copy of the scope: the dict must exist beforehand for us to see it (not every ASGI
        # server provides it).
        scope.setdefault("extensions", {})
        slot = DatabaseSlot(self.services.database.gate)
        # Partner calls take their slot in their security check, once the token and the rate
        # limit passed (a flood beyond the limit is refused from memory); the token endpoint
        # only around its short reads and its audit event; other audited calls right away.
        eager = path.startswith(AUDITED_PREFIXES) and not path.startswith(("/partenaire/", TOKEN_PATH))
        if eager:
            # Before any work: a call that cannot be served soon is refused at once, from
            # memory, rather than queued on the database (see ConcurrencyGate).
            try:
                await slot.take()
            except Overloaded:
                await self._overloaded(state, send, started)
                return
        token = bind_request(state)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        # The client's connection: a batch of audit events may wait for its next call.
        answer = _Answer(connection=_connection_of(scope) if path.startswith(AUDITED_PREFIXES) else None)
        self.batches.arrived(answer.connection)
        slot_token = _SLOT.set(slot)

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
                # A body that streams (an export) may still read while it flows.
                await self._release(answer, state, scope, send, streams=bool(message.get("more_body")))
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
            self.batches.answered(answer.connection)
            if state.has_session:
                await anyio.to_thread.run_sync(state.end_session)
            slot.give_back()
            _SLOT.reset(slot_token)
            self._observe(state, answer.status, time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")
            unbind_request(token)

    async def _release(
        self, answer: _Answer, state: RequestState, scope: Scope, send: Send, *, streams: bool = False
    ) -> None:
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
        # A probe (unknown path or method with a valid token, see api.errors) is audited too.
        known = operation is not None or state.audit.operation == PROBE_OPERATION
        audited = known and path.startswith(AUDITED_PREFIXES)
        if audited:
            written = await self._audit(state, answer.start["status"], answer.connection, streams=streams)
            if written is None:
                # No database slot for the event: nothing leaves but a 503 (not a 500: the
                # hub is busy, not broken; the caller retries after Retry-After).
                answer.start, failure = _overloaded_answer()
                state.audit.reason = "overloaded"
            elif not written:
                answer.start, failure = self._failure(path)
        answer.replaced = bool(failure)
        answer.status = answer.start["status"]
        start = answer.start
        start["headers"] = [*start.get("headers", []), (b"x-request-id", state.request_id.encode())]
        await send(start)
        for message in failure:
            await send(message)

    async def _audit(self, state: RequestState, status: int, connection: Any, *, streams: bool = False) -> bool | None:
        """Whether the event was committed; None when no database slot freed in time."""
        started = time.perf_counter()
        slot = _SLOT.get()
        # A streamed body keeps the call's slot while it flows (it may read as it goes).
        batched = status >= 400 or not (streams or (state.has_session and wrote(state.session())))
        try:
            if slot is not None and batched:
                # A refused or failed call keeps nothing of its work, and a call that only read
                # has nothing to keep: its reads end here (a rollback, which waits for no disk)
                # and its event joins the others' in one commit, so concurrent calls share one
                # flush to disk instead of queueing for one each. Each still waits for the commit
                # that holds its event before its answer leaves.
                if state.has_session:
                    if self.services.database.dialect == "sqlite":
                        # Ending a transaction that wrote nothing, in a local file, waits for
                        # neither disk nor lock: done here, it spares a thread hand-off (the
                        # GIL's ping-pong costs more than the rollback itself).
                        state.end_session()
                    else:
                        await anyio.to_thread.run_sync(state.end_session)
                slot.give_back()
                if not await self.batches.write(slot.gate, state, status, connection=connection):
                    raise RuntimeError("audit batch not committed")
            else:
                # A call that wrote: its work and its event commit together, or neither does.
                await hold_database_slot()
                await anyio.to_thread.run_sync(_commit_with_audit, state, status)
        except (Overloaded, PoolTimeout):
            # No connection freed in time (a periodic job holding SQLite's, say): nothing was
            # committed, the hub is busy rather than broken, the caller retries.
            log.warning("audit_overloaded", operation=state.audit.operation)
            return None
        except Exception as exc:
            self.services.metrics.audit_failures.inc()
            log.error("audit_write_failed", operation=state.audit.operation, **safe_exception_fields(exc))
            return False
        self.services.metrics.audit_latency.observe(time.perf_counter() - started)
        return True

    async def _overloaded(self, state: RequestState, send: Send, started: float) -> None:
        """503 with ``Retry-After``: not audited (nothing was read or done, and auditing would
        need the very database slot that is lacking), but logged and counted."""
        start, body = _overloaded_answer()
        start["headers"].append((b"x-request-id", state.request_id.encode()))
        await send(start)
        for message in body:
            await send(message)
        state.audit.reason = "overloaded"
        self._observe(state, 503, time.perf_counter() - started)

    def _failure(self, path: str) -> tuple[Message, list[Message]]:
        status, headers, payload = self.failure_response(path)
        start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        return start, [{"type": "http.response.body", "body": payload}]

    def _observe(self, state: RequestState, status: int, elapsed: float) -> None:
        # Only the specs' operation ids label a metric or name a call in the log: the path of
        # an unrouted call (it may hold a NIR, and there are as many as callers invent) never.
        operation = PROBE_OPERATION if state.audit.operation.startswith("/") else state.audit.operation
        self.services.metrics.answered(operation, status, elapsed)
        log.info(
            "request",
            operation=operation,
            client_id=state.audit.client_id,
            status=status,
            decision=decision_for(status),
            reason=state.audit.reason,
            duration_ms=round(elapsed * 1000, 2),
        )


def _connection_of(scope: Scope) -> tuple[Any, ...] | None:
    """The client's connection (host, port), as the ASGI server gives it (a list, at times)."""
    client = scope.get("client")
    return tuple(client) if client else None


@dataclass
class DatabaseSlot:
    """A call's hold on the database (``Database.gate``): taken before its first database
    work, kept until its audit event is committed and its session closed."""

    gate: ConcurrencyGate
    held: bool = False

    async def take(self) -> None:
        if not self.held:
            await self.gate.acquire()
            self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.gate.release()


_SLOT: ContextVar[DatabaseSlot | None] = ContextVar("relais_database_slot", default=None)


async def hold_database_slot() -> None:
    """Take the current call's database slot, if not held yet; raises ``Overloaded`` when
    none frees within the gate's wait. Call it in async code before a thread hop that opens
    the call's session: no thread then ever waits on the connection pool."""
    slot = _SLOT.get()
    if slot is not None:
        await slot.take()


@dataclass
class _Answer:
    """The response of one call as it goes through the pipeline."""

    start: Message | None = None
    status: int = 500
    # The status line went out (after the audit event was committed).
    released: bool = False
    # The handler's answer was replaced by the failure answer: its body is dropped.
    replaced: bool = False
    # The client's connection (``_connection_of``), for the group commit; None if not audited.
    connection: tuple[Any, ...] | None = None


def _overloaded_answer() -> tuple[Message, list[Message]]:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
        (b"retry-after", str(Overloaded.retry_after).encode()),
    ]
    start: Message = {"type": "http.response.start", "status": 503, "headers": headers}
    return start, [{"type": "http.response.body", "body": _OVERLOADED_BODY}]


def _commit_with_audit(state: RequestState, status: int) -> None:
    session = state.session()
    try:
        if status >= 400:
            # A refused or failed call changes nothing: only its audit event is kept (when
            # the call had no slot to batch it with the others).
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
        state.end_session()


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


def _record_agent_headers(draft: AuditDraft, headers: list[tuple[bytes, bytes]]) -> None:
    """Keep what the caller sent, even when invalid, so refusals are attributable too.

    A header sent twice is recorded under neither value: the call is refused for it
    (``api.validation.InputGuard``) and no copy may be taken for the agent's identity.
    """
    sent = [name.lower() for name, _ in headers]
    for name, raw in headers:
        attribute = _AGENT_HEADERS.get(name.lower())
        if attribute is not None and sent.count(name.lower()) == 1:
            setattr(draft, attribute, raw.decode("utf-8", errors="replace")[:100])


def _operation_id(scope: Scope) -> str | None:
    routing: dict[str, Any] = scope.get("extensions", {}).get("connexion_routing", {})
    operation = routing.get("operation_id")
    return contract_operation_id(str(operation)) if operation else None
