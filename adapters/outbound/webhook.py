"""The webhook implementation of the delivery port: a signed HTTPS POST with httpx.

Any 2xx acknowledges the event. 429 and 503 may carry ``Retry-After`` (seconds or an HTTP
date), which the worker honours. Redirects are not followed: a moved endpoint is a
configuration change, not something to trust silently with signed personal-adjacent data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from adapters.outbound.port import Delivery, Outcome, Target
from adapters.outbound.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_header,
)

USER_AGENT = "Relais-Connecteur/1"


def encode(document: object) -> bytes:
    """The exact bytes that are signed and sent: compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


class WebhookSender:
    def __init__(self, client: httpx.Client | None = None, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.client = client or httpx.Client(follow_redirects=False)
        self._wall_clock = wall_clock

    def close(self) -> None:
        self.client.close()

    def send(self, target: Target, delivery: Delivery) -> Outcome:
        body = encode(delivery.document)
        timestamp = int(self._wall_clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.event_type,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature_header(target.keys, timestamp, body),
        }
        started = time.perf_counter()
        try:
            response = self.client.post(
                target.url, content=body, headers=headers, timeout=httpx.Timeout(target.timeout_seconds)
            )
        except httpx.TimeoutException:
            return Outcome(False, error="délai de réponse dépassé", duration_ms=_since(started))
        except httpx.ConnectError:
            return Outcome(False, error="connexion impossible", duration_ms=_since(started))
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"erreur de transport ({type(exc).__name__})", duration_ms=_since(started))
        elapsed = _since(started)
        if 200 <= response.status_code < 300:
            return Outcome(True, http_status=response.status_code, duration_ms=elapsed)
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return Outcome(
            False,
            http_status=response.status_code,
            error=f"réponse HTTP {response.status_code}",
            retry_after=retry_after if response.status_code in (429, 503) else None,
            duration_ms=elapsed,
        )


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (RFC 9110: delay-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
