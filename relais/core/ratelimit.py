"""Per-client, per-API rate limits, answered the way France Travail answers them.

France Travail publishes a burst capacity in calls per second per API and per client
(``X-Ratelimit-Burst-Capacity-Clientidlimiter``) and the calls left in the current second
(``X-Ratelimit-Remaining-Clientidlimiter``). We keep one fixed one-second window per
(client, API).

By default (``RateLimiter``) the windows live in process memory: with N server processes a
client may reach N times its limit. With ``RELAIS_REDIS_URL`` set (``SharedRateLimiter``) they
live in Redis, counted by the ``limits`` library's atomic increment, so one limit holds across
every worker and replica. When Redis does not answer, each process falls back to its own
in-memory windows for a few seconds, logs a warning and counts it in a metric: a client is then
limited per process (N times its limit at worst) rather than refused outright, since the rate
limit protects capacity, not access (tokens, habilitations and audit are checked all the same).

Credential attempts at the token endpoint stay counted per process in every mode: they are
refunded on success within the same process, and a per-process bound already stops guessing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import structlog
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.engine import make_url

LOGGER = "relais.ratelimit"


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    capacity: int
    remaining: int
    retry_after: int


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}
        # Credential attempts at the token endpoint (see AttemptLimiter): 10 per client id or
        # per source address in 10 s, failures only, since successes are given back.
        self.credentials = AttemptLimiter(10, 10.0, clock=clock)

    def hit(self, client_id: str, api: str, capacity: int) -> RateDecision:
        now = self._clock()
        second = math.floor(now)
        key = (client_id, api)
        with self._lock:
            window, used = self._windows.get(key, (second, 0))
            if window != second:
                window, used = second, 0
            if used >= capacity:
                retry_after = max(1, math.ceil(window + 1 - now))
                return RateDecision(False, capacity, 0, retry_after)
            used += 1
            self._windows[key] = (window, used)
            return RateDecision(True, capacity, capacity - used, 0)


class SharedRateLimiter(RateLimiter):
    """The same one-second windows, counted in Redis: one limit across processes and replicas.

    One round trip per call: ``limits``' Redis storage increments the window's counter and sets
    its one-second expiry in one atomic script, and the count it returns gives the calls left.
    A window starts at its first call (not on the clock's second), which is the same allowance.
    """

    # How long a process keeps to its own windows after Redis failed, before trying again: a
    # down Redis then costs one timed-out call per process every few seconds, not every call.
    RETRY_SECONDS = 5.0

    def __init__(
        self,
        redis_url: str,
        *,
        registry: CollectorRegistry | None = None,
        timeout: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.storage = RedisStorage(
            redis_url,
            wrap_exceptions=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        self.description = redact_redis_url(redis_url)
        self.fallbacks = Counter(
            "relais_ratelimit_store_failures_total",
            "Rate limit checks made in process memory because Redis did not answer.",
            registry=registry,
        )
        self._down_until = 0.0

    def hit(self, client_id: str, api: str, capacity: int) -> RateDecision:
        now = self._clock()
        if now >= self._down_until:
            item = RateLimitItemPerSecond(capacity)
            try:
                used = self.storage.incr(item.key_for(client_id, api), item.get_expiry())
            except StorageError as exc:
                self._down_until = now + self.RETRY_SECONDS
                # The cause's type only: a Redis error may quote the URL, password included.
                # A logger bound now (a rare path): a module-level one is cached by structlog
                # with whatever output was current at its first use.
                structlog.get_logger(LOGGER).warning(
                    "ratelimit_store_unavailable",
                    store=self.description,
                    error=type(exc.storage_error).__name__,
                    fallback="process_memory",
                    retry_in_seconds=self.RETRY_SECONDS,
                )
            else:
                if used > capacity:
                    return RateDecision(False, capacity, 0, 1)
                return RateDecision(True, capacity, capacity - used, 0)
        self.fallbacks.inc()
        return super().hit(client_id, api, capacity)


def redact_redis_url(url: str) -> str:
    """The URL without its password, for the banner and the logs."""
    return make_url(url).render_as_string(hide_password=True)


def build_rate_limiter(redis_url: str, registry: CollectorRegistry | None = None) -> RateLimiter:
    """Redis-backed when ``redis_url`` is set, otherwise the per-process default."""
    if redis_url:
        return SharedRateLimiter(redis_url, registry=registry)
    return RateLimiter()


def describe_rate_limits(redis_url: str) -> str:
    """What ``relais serve`` says at start about where limits are counted (French, for operators)."""
    if redis_url:
        return f"Limites de débit : partagées entre processus et répliques (Redis {redact_redis_url(redis_url)})"
    return "Limites de débit : comptées par processus (RELAIS_REDIS_URL pour les partager entre processus)"


class AttemptLimiter:
    """Counts credential attempts per key (a client id, a source address) in a sliding window.

    An attempt is counted when it starts, before any database access or argon2 check, and
    refunded when it succeeds: a flood of unknown client ids or wrong secrets is then
    refused from memory alone, including the burst that arrives before any attempt failed.
    Memory is bounded: past ``max_keys`` keys the oldest windows are dropped.
    """

    def __init__(
        self,
        capacity: int,
        window_seconds: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.window = window_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key → (start of its window, attempts counted in it); insertion order = age.
        self._counts: dict[str, tuple[float, int]] = {}

    def try_acquire(self, *keys: str) -> RateDecision:
        """Count one attempt against every key, or none if one of them is exhausted."""
        now = self._clock()
        with self._lock:
            current = [self._current(key, now) for key in keys]
            for start, used in current:
                if used >= self.capacity:
                    retry_after = max(1, math.ceil(start + self.window - now))
                    return RateDecision(False, self.capacity, 0, retry_after)
            for key, (start, used) in zip(keys, current, strict=True):
                self._counts.pop(key, None)
                self._counts[key] = (start, used + 1)
            self._evict()
            remaining = min(self.capacity - used - 1 for _, used in current) if current else self.capacity
            return RateDecision(True, self.capacity, remaining, 0)

    def refund(self, *keys: str) -> None:
        """Give back the attempt of a call whose credentials were good."""
        with self._lock:
            for key in keys:
                found = self._counts.get(key)
                if found is not None and found[1] > 0:
                    self._counts[key] = (found[0], found[1] - 1)

    def _current(self, key: str, now: float) -> tuple[float, int]:
        found = self._counts.get(key)
        if found is None or now - found[0] >= self.window:
            return now, 0
        return found

    def _evict(self) -> None:
        while len(self._counts) > self.max_keys:
            self._counts.pop(next(iter(self._counts)))


class Overloaded(Exception):
    """No slot freed in time: the caller answers 503 with ``Retry-After`` at once."""

    retry_after = 1


class ConcurrencyGate:
    """At most ``capacity`` holders at once, a bounded queue, and a bounded wait.

    In front of the database connections: a call takes a slot before it first needs a
    connection and gives it back after its audit event is committed, so no call ever waits
    for a connection inside a worker thread (threads waiting on the pool while the holder
    needs a thread to commit is how a flood used to end in 500s after a minute). A call
    that cannot get a slot within ``max_wait`` seconds, or finds ``max_waiting`` callers
    already queued, is refused at once: memory and latency stay bounded under flood.
    """

    def __init__(self, capacity: int, *, max_waiting: int = 256, max_wait: float = 1.0) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.max_wait = max_wait
        self._semaphore: anyio.Semaphore | None = None
        self._waiting = 0

    async def acquire(self) -> None:
        if self._semaphore is None:
            # Created in the serving event loop, on first use.
            self._semaphore = anyio.Semaphore(self.capacity)
        semaphore = self._semaphore
        try:
            semaphore.acquire_nowait()
            return
        except anyio.WouldBlock:
            pass
        if self._waiting >= self.max_waiting:
            raise Overloaded()
        self._waiting += 1
        try:
            with anyio.move_on_after(self.max_wait):
                await semaphore.acquire()
                return
        finally:
            self._waiting -= 1
        raise Overloaded()

    def release(self) -> None:
        assert self._semaphore is not None
        self._semaphore.release()
