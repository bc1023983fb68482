"""The long-lived objects one app instance works with, built once by the app factory.

Handlers read them from the request state (``api.context``) and pass what the code below
them needs as arguments: the session, ``clock()``, the keys, ``audit_recorder``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from audit.journal import JournalRecorder
from parcours.ports import Backends
from relais.core.auditing import AuditRecorder
from relais.core.config import Settings
from relais.core.db import Database
from relais.core.keys import KeySet
from relais.core.observability import Metrics
from relais.core.ratelimit import RateLimiter


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    database: Database
    keys: KeySet
    backends: Backends
    metrics: Metrics
    rate_limiter: RateLimiter
    clock: Callable[[], datetime] = utc_now
    # How domains acting on the call's behalf (an agent suspended for inactivity...) write
    # their own audit events, in the call's unit of work.
    audit_recorder: AuditRecorder = field(default_factory=JournalRecorder)

    @property
    def token_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.token_ttl_seconds)

    @property
    def jeton_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.jeton_ttl_seconds)
