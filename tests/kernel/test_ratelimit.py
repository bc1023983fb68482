import os
import socket
import time
import uuid

import pytest
import structlog
import structlog.testing
from prometheus_client import CollectorRegistry

from relais.core.ratelimit import RateLimiter, SharedRateLimiter, build_rate_limiter, describe_rate_limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.25

    def __call__(self) -> float:
        return self.now


def test_burst_capacity_per_second_then_refused() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    decisions = [limiter.hit("c", "/api", 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == 1


def test_next_second_resets_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    for _ in range(3):
        limiter.hit("c", "/api", 3)
    clock.now += 1
    assert limiter.hit("c", "/api", 3).allowed


def test_windows_are_per_client_and_per_api() -> None:
    limiter = RateLimiter(FakeClock())
    assert limiter.hit("a", "/x", 1).allowed
    assert not limiter.hit("a", "/x", 1).allowed
    assert limiter.hit("b", "/x", 1).allowed
    assert limiter.hit("a", "/y", 1).allowed


# Shared limits (RELAIS_REDIS_URL) ------------------------------------------------------------


def redis_url() -> str:
    """The test Redis (scripts/test exports it when one answers), or skip."""
    url = os.environ.get("RELAIS_TEST_REDIS_URL", "")
    if not url:
        pytest.skip("no Redis: RELAIS_TEST_REDIS_URL is unset (scripts/test sets it when 127.0.0.1:6379 answers)")
    return url


def test_two_processes_sharing_redis_share_one_limit() -> None:
    url = redis_url()
    # Two limiters stand for two processes: only Redis is shared between them.
    first, second = SharedRateLimiter(url), SharedRateLimiter(url)
    client = f"c-{uuid.uuid4().hex}"
    decisions = [limiter.hit(client, "/api", 4) for limiter in (first, second) * 3]
    assert [d.allowed for d in decisions] == [True, True, True, True, False, False]
    assert [d.remaining for d in decisions[:4]] == [3, 2, 1, 0]
    assert decisions[-1].retry_after == 1
    # Another client, another API: windows of their own.
    assert first.hit(f"{client}-b", "/api", 4).allowed
    assert second.hit(client, "/other", 4).allowed


def test_the_shared_window_lasts_one_second() -> None:
    limiter = SharedRateLimiter(redis_url())
    client = f"c-{uuid.uuid4().hex}"
    assert limiter.hit(client, "/api", 1).allowed
    assert not limiter.hit(client, "/api", 1).allowed
    time.sleep(1.1)
    assert limiter.hit(client, "/api", 1).allowed


def test_redis_down_falls_back_to_process_memory_and_says_so() -> None:
    # A port nothing listens on: the store fails fast (connection refused).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registry = CollectorRegistry()
    clock = FakeClock()
    limiter = SharedRateLimiter(f"redis://:secret-pw@127.0.0.1:{port}/0", registry=registry, clock=clock)
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        decisions = [limiter.hit("c", "/api", 2) for _ in range(3)]
    # Still limited, per process: the client is not refused outright, nor let through unbounded.
    assert [d.allowed for d in decisions] == [True, True, False]
    assert registry.get_sample_value("relais_ratelimit_store_failures_total") == 3
    # One attempt at Redis, then memory only until the retry delay: no per-call timeout.
    assert time.monotonic() - started < 1.0
    assert [entry["event"] for entry in logs] == ["ratelimit_store_unavailable"]
    assert "secret-pw" not in str(logs)


def test_the_server_says_where_limits_are_counted() -> None:
    assert "par processus" in describe_rate_limits("")
    shared = describe_rate_limits("redis://:secret-pw@redis.example:6379/2")
    assert "partagées" in shared and "redis.example:6379/2" in shared and "secret-pw" not in shared
    assert type(build_rate_limiter("")) is RateLimiter
    assert isinstance(build_rate_limiter("redis://127.0.0.1:6379/0"), SharedRateLimiter)
