"""habilitations: people's notifications inbox

Revision ID: c0ffee000011
Revises: c0ffee000010
"""

from collections.abc import Sequence

revision: str = "c0ffee000011"
down_revision: str | None = "c0ffee000010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
