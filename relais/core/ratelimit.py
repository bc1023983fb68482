"""Per-client, per-API rate limits, answered the way France Travail answers them.

France Travail publishes a burst capacity in calls per second per API and per client
(``X-Ratelimit-Burst-Capacity-Clientidlimiter``) and the calls left in the current second
(``X-Ratelimit-Remaining-Clientidlimiter``). We keep one fixed one-second window per
(client, API) in process memory: with N server processes a client may reach N times its
limit. The README says how to size limits for that.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


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
