"""habilitations/inbound: the integrator's role and console imports

Revision ID: c0ffee000012
Revises: c0ffee000011
"""

from collections.abc import Sequence

revision: str = "c0ffee000012"
down_revision: str | None = "c0ffee000011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
