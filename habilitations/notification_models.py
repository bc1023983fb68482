"""Tables of the people's notification inbox, shown in the console (issue #13).

A notification in the outbox is addressed to a role ("rgc:CD33") or a person ("agent:10");
it is filed here once per person it reaches, already written in French, so that each person
reads and marks their own copy. The e-mail copy, when a channel exists, is the outbox
message's own delivery (``message_id``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from relais.core.tables import new_id, utcnow


class Notification(SQLModel, table=True):
    """One person's copy of one notification."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("message_id", "agent_id", name="uq_notification_message_agent"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    # The person who reads it.
    agent_id: int = Field(foreign_key="agent.id", index=True)
    # The outbox message it was filed from (the e-mail copy's delivery state is there).
    message_id: str = Field(foreign_key="outbox_message.id", max_length=32, index=True)
    topic: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    body: str = Field(sa_column=Column(Text, nullable=False))
    # The console page to open (a path: the e-mail copy makes it absolute).
    link: str = Field(max_length=2048)
    # When the notification was raised (the outbox message's time), not when it was filed.
    created_at: datetime = Field(index=True)
    read_at: datetime | None = None


class NotificationFiling(SQLModel, table=True):
    """An outbox message already filed in the inboxes (even when it reached no one)."""

    __tablename__ = "notification_filing"

    message_id: str = Field(foreign_key="outbox_message.id", primary_key=True, max_length=32)
    filed_at: datetime = Field(default_factory=utcnow)
    # How many people's inboxes it reached.
    recipients: int = 0
