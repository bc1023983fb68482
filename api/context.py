"""Per-request state shared by the middleware, the security checks and the handlers.

The outermost Relais middleware (``api.pipeline``) puts a ``RequestState`` in a context
variable. Starlette copies the context into the thread that runs a synchronous handler, so
handlers see the same mutable object and what they record (the usager, the reason of a
refusal) reaches the audit event written after them.

This is the web shell's own state: handlers read it and pass what the code below them needs
as arguments. Nothing outside ``api/`` calls ``current_request()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from parcours.ports import Perimetre
from relais.core.auditing import AuditDraft
from relais.core.db import Database

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
    # A read-only session lent for a read done on the event loop (``reading``).
    _reader: Session | None = field(default=None, repr=False)

    def session(self) -> Session:
        """The request's unit of work, committed together with its audit event."""
        if self._reader is not None:
            return self._reader
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

    @contextmanager
    def reading(self, reader: Session) -> Iterator[Session]:
        """Within the block, ``session()`` is ``reader``, a session that can only read
        (``read_only_session``), closed at the end. The request's own unit of work stays
        unopened: a call that only read this way has nothing to end and joins the group commit."""
        self._reader = reader
        try:
            yield reader
        finally:
            self._reader = None
            reader.close()

    def end_session(self) -> None:
        """Close the unit of work (rolling back what was not committed), so the pipeline needs
        no further thread hop to close it unless it is used again."""
        session = self._session or self._ended
        self._session = None
        if session is not None:
            self._ended = session
            session.close()


# Per database: the engine of ``read_only_session``, or None where there is none (PostgreSQL,
# an in-memory SQLite). An app serves one database; tests build several in one process.
_readers: WeakKeyDictionary[Database, Engine | None] = WeakKeyDictionary()


def read_only_session(database: Database) -> Session | None:
    """A session that can only read, on a SQLite file, for a read done on the event loop.

    Its one connection (opened with ``PRAGMA query_only``, in autocommit) sees the last
    committed state, as the request's own transaction would, and waits for nothing: in WAL
    mode a reader waits for no writer, nor for the single pooled connection (the writers'),
    and with no busy timeout a rare busy answer is an error at once (the caller then reads in
    a worker thread as usual). A statement that would write fails instead of writing. None on
    PostgreSQL, where a read is a network round trip and is done in a worker thread.
    """
    try:
        engine = _readers[database]
    except KeyError:
        engine = _reader_engine(database)
        if engine is None and database.dialect == "sqlite" and _sqlite_path(database) is not None:
            return None  # the file is not there yet: look again next time
        _readers[database] = engine
    # Nothing is ever added to it: no flush to look for before each query.
    return None if engine is None else Session(engine, expire_on_commit=False, autoflush=False)


def _sqlite_path(database: Database) -> str | None:
    path = database.engine.url.database
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def _reader_engine(database: Database) -> Engine | None:
    path = _sqlite_path(database) if database.dialect == "sqlite" else None
    if path is None or not Path(path).is_file():
        return None
    engine = create_engine(
        database.engine.url,
        # One connection, used only from the event loop's thread.
        poolclass=StaticPool,
        connect_args={"check_same_thread": False, "timeout": 0},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA query_only=ON")

    return engine


_current: ContextVar[RequestState] = ContextVar("relais_request")


def current_request() -> RequestState:
    return _current.get()


def bind_request(state: RequestState) -> object:
    return _current.set(state)


def unbind_request(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
