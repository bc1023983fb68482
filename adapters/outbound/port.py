"""The outbound delivery port: one message to one configured endpoint, one outcome.

The worker knows nothing of HTTP; an implementation (``webhook.WebhookSender``) knows nothing
of the outbox. ``email.SmtpSender`` carries people's notifications; another transport (a file
drop...) would be another implementation of ``Sender``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Target:
    """Where and how to deliver: the connector's endpoint, its valid keys, its timeout."""

    connector: str
    url: str
    # kid -> secret, newest first; every delivery is signed with each of them.
    keys: Mapping[str, bytes]
    timeout_seconds: float
    # E-mail only: the addresses of the people a notification is for.
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """One message: its id (the editor's idempotency key), its type and its JSON document."""

    event_id: str
    event_type: str
    document: Mapping[str, Any]
    # People's notifications by e-mail: the French wording (``adapters.outbound.notices``).
    subject: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    http_status: int | None = None
    # A short reason for a failure, in French, without the editor's body (it may echo data).
    error: str | None = None
    # Seconds the endpoint asked us to wait (Retry-After on 429 or 503).
    retry_after: float | None = None
    duration_ms: int = 0


class Sender(Protocol):
    def send(self, target: Target, delivery: Delivery) -> Outcome: ...
