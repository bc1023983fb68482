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

from sqlmodel import Session

from parcours.ports import Perimetre
from relais.core.auditing import AuditDraft

if TYPE_CHECKING:
    from api.services import Services
    from habilitations.roles import Principal


@dataclass
class RequestState:
    request_id: str
    services: Services
    audit: AuditDraft
    # The authenticated agent of an admin API call, set by ``api.admin.admin_security``.
    principal: Principal | None = None
    # The habilitation policy version this call's transaction read (``api.security``).
    policy_version: int | None = None
    # The caller's organisation perimeter, read with the client's rights under that version.
    perimetre: Perimetre | None = None
    _session: Session | None = field(default=None, repr=False)
    _ended: Session | None = field(default=None, repr=False)

    def session(self) -> Session:
        """The request's unit of work, committed together with its audit event."""
        if self._session is None:
            self._session = self.services.database.session()
        return self._session

    @property
    def has_session(self) -> bool:
        """Whether a unit of work is open: the current one, or the ended one used again (a
        streamed answer reads through the session it captured, after the audit commit)."""
        if self._session is not None:
            return True
        return self._ended is not None and self._ended.in_transaction()

    def end_session(self) -> None:
        """Close the unit of work (rolling back what was not committed), so the pipeline needs
        no further thread hop to close it unless it is used again."""
        session = self._session or self._ended
        self._session = None
        if session is not None:
            self._ended = session
            session.close()


_current: ContextVar[RequestState] = ContextVar("relais_request")


def current_request() -> RequestState:
    return _current.get()


def bind_request(state: RequestState) -> object:
    return _current.set(state)


def unbind_request(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
