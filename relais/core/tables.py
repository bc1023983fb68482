"""Tables every domain shares: organisations and the API clients registered for them.

Declaring the metadata here (with its naming convention) gives every domain's tables one
``MetaData`` for Alembic; each domain declares its own tables in its own ``tables``/``models``
module, all collected by ``relais.schema`` for the migrations.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, Column, MetaData
from sqlmodel import Field, SQLModel

# Named constraints let Alembic alter them later, on SQLite (batch mode) too.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=32)
    # CD, FT, ML, CE or DCD, as in the contracts' ``organisme`` codes.
    type: str = Field(max_length=8)
    libelle: str = Field(max_length=255)
    # Département codes this organisation serves: its usagers are attached to it.
    territoire: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Its structure codes in France Travail's referentials, as orientations designate it.
    code_aurore: str | None = Field(default=None, max_length=16, index=True)
    code_safir: str | None = Field(default=None, max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Client(SQLModel, table=True):
    """An application registered to call the partner APIs (OAuth2 client credentials)."""

    __tablename__ = "client"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(unique=True, index=True, max_length=64)
    # argon2id hash; the secret itself is shown once at creation and never stored.
    secret_hash: str = Field(max_length=255)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    enabled: bool = True
    # Calls per second per API; None means the configured default.
    rate_limit_per_second: int | None = None
    # May the client's producer feed write for usagers of every territory (France Travail's
    # national applications)? Otherwise only for usagers of its organisation's territory.
    national: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
