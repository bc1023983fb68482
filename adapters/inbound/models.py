"""What Relais remembers of inbound feeds: the files imported, where each pull connector stands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from relais.core.tables import utcnow


class ImportedFile(SQLModel, table=True):
    """A CSV file once imported: the same bytes under the same format are not imported again."""

    __tablename__ = "imported_file"
    __table_args__ = (UniqueConstraint("sha256", "format"),)

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    format: str = Field(max_length=64)
    imported_at: datetime = Field(default_factory=utcnow)
    lines: int = 0
    # Counts per outcome and per matching rule; never values from the file.
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class PullCursor(SQLModel, table=True):
    """Where a pull connector resumes: the ``since``/cursor value of its last complete run."""

    __tablename__ = "pull_cursor"

    name: str = Field(primary_key=True, max_length=64)
    cursor: str | None = Field(default=None, max_length=512)
    last_run_at: datetime | None = None
    last_status: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=1000)
    updated_at: datetime = Field(default_factory=utcnow)
