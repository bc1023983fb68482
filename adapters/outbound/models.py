"""Connector configuration and delivery history, in Relais' database (never in code).

A connector delivers an organisation's events (and, when asked, its people's notifications) to
one endpoint of its editor's software. Its HMAC secrets are stored encrypted with the field
key; during a rotation two keys are valid and every delivery is signed with both.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from relais.core.tables import utcnow

ACTIVE = "actif"
PAUSED = "suspendu"
WEBHOOK = "webhook"
# People's notifications by e-mail (url smtp:// or smtps://).
EMAIL = "email"
# The envelope format of the editor-facing contract (specs/editor-webhook-v1.yaml).
FORMAT_V1 = "relais-evenement-v1"
# Recipient prefix of the outbox messages addressed to one connector.
RECIPIENT_PREFIX = "connecteur:"


class Connector(SQLModel, table=True):
    __tablename__ = "connector"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=64)
    # None: a hub-level connector (the CSSI's notifications).
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    kind: str = Field(default=WEBHOOK, max_length=16)
    format: str = Field(default=FORMAT_V1, max_length=32)
    url: str = Field(max_length=2048)
    # Event types delivered ("orientation.a_decider"...); "*" for all of them.
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Also carries the notifications for the organisation's people (agents, RGC, RSSI).
    notifications: bool = False
    state: str = Field(default=ACTIVE, max_length=16, index=True)
    pause_reason: str | None = Field(default=None, max_length=255)
    paused_at: datetime | None = None
    consecutive_failures: int = 0
    # None: the hub's defaults (relais.core.config).
    max_attempts: int | None = None
    timeout_seconds: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def recipient(self) -> str:
        return f"{RECIPIENT_PREFIX}{self.name}"

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class ConnectorKey(SQLModel, table=True):
    __tablename__ = "connector_key"

    id: int | None = Field(default=None, primary_key=True)
    connector_id: int = Field(foreign_key="connector.id", index=True)
    kid: str = Field(unique=True, max_length=32)
    # The HMAC secret, sealed with the field key (context "connector_key.secret").
    secret_sealed: str = Field(max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    # Set when a newer key replaced it: it keeps signing until then, and no longer after.
    retired_at: datetime | None = None


class DeliveryAttempt(SQLModel, table=True):
    """One try to deliver one outbox message: the history the API and the CLI show."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(foreign_key="outbox_message.id", index=True, max_length=32)
    connector_id: int | None = Field(default=None, foreign_key="connector.id", index=True)
    attempt: int
    attempted_at: datetime = Field(index=True)
    # delivered, failed, dead
    outcome: str = Field(max_length=16)
    http_status: int | None = None
    # A short reason (status, timeout, refused connection), never the editor's body.
    error: str | None = Field(default=None, max_length=255)
    duration_ms: int = 0
