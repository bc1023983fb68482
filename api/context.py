"""Per-request state shared by the middleware, the security checks and the handlers.

The outermost Relais middleware (``api.pipeline``) puts a ``RequestState`` in a context
variable. Starlette copies the context into the thread that runs a synchronous handler, so
handlers see the same mutable object and what they record (the usager, the reason of a
refusal) reaches the audit event written after them.

This is the web shell's own state: handlers read it and pass what the code below them needs
as arguments. Nothing outside ``api/`` calls ``current_request()``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from relais.core.auditing import AuditDraft

if TYPE_CHECKING:
    from sqlmodel import Session

    from api.services import Services
    from habilitations.roles import Principal


@dataclass
class RequestState:
    request_id: str
    services: Services
    audit: AuditDraft
    # The authenticated agent of an admin API call, set by ``api.admin.admin_security``.
    principal: Principal | None = None
    _session: Session | None = field(default=None, repr=False)

    def session(self) -> Session:
        """The request's unit of work, committed together with its audit event."""
        if self._session is None:
            self._session = self.services.database.session()
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None


_current: ContextVar[RequestState] = ContextVar("relais_request")


def current_request() -> RequestState:
    return _current.get()


def bind_request(state: RequestState) -> object:
    return _current.set(state)


def unbind_request(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
