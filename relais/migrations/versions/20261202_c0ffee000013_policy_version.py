"""habilitations: the policy version counter the request path checks

Revision ID: c0ffee000013
Revises: c0ffee000012
"""

from collections.abc import Sequence

revision: str = "c0ffee000013"
down_revision: str | None = "c0ffee000012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
