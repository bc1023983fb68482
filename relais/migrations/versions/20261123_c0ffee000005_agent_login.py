"""agent login (reserved: filled in by its workstream, or removed before release)

Revision ID: c0ffee000005
Revises: c0ffee000004
"""

from collections.abc import Sequence

revision: str = "c0ffee000005"
down_revision: str | None = "c0ffee000004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
