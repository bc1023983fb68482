"""The long-lived objects one app instance works with, built once by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from parcours.ports import Backends
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

    @property
    def token_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.token_ttl_seconds)

    @property
    def jeton_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.jeton_ttl_seconds)
