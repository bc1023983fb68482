"""audit journal (reserved: filled in by its workstream, or removed before release)

Revision ID: c0ffee000001
Revises: ae57c548ff78
"""

from collections.abc import Sequence

revision: str = "c0ffee000001"
down_revision: str | None = "ae57c548ff78"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
