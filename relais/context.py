"""Per-request state shared by the middleware, the security check and the handlers.

The outermost Relais middleware puts a ``RequestState`` in a context variable. Starlette
copies the context into the thread that runs a synchronous handler, so handlers see the
same mutable object and what they record (the usager, the reason of a refusal) reaches the
audit event written after them.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlmodel import Session

    from relais.services import Services


@dataclass
class AuditDraft:
    """What the audit event of this request will say, filled in as the request goes."""

    channel: str
    operation: str
    client_id: str | None = None
    organisation: str | None = None
    agent_nom: str | None = None
    agent_prenom: str | None = None
    agent_identifiant: str | None = None
    usager_id: str | None = None
    usager_nir_index: str | None = None
    # Set when the request is refused for a reason the status alone does not tell.
    reason: str | None = None
    agent_id: int | None = None
    habilitation_id: str | None = None
    acr: str | None = None
    scopes: str | None = None
    purpose: str | None = None
    data_origin: str | None = None
    upstream_request_id: str | None = None
    target: str | None = None
    details: dict[str, Any] | None = None


@dataclass
class RequestState:
    request_id: str
    services: Services
    audit: AuditDraft
    # The authenticated agent of an admin API call (habilitations.roles.Principal).
    principal: Any = None
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
