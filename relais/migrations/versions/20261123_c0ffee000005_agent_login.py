"""agent login: ProConnect login attempts and the SIRET directory of organisations

Revision ID: c0ffee000005
Revises: c0ffee000004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c0ffee000005"
down_revision: str | None = "c0ffee000004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_attempt",
        sa.Column("state_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("code_verifier", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_login_attempt")),
    )
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_attempt_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "organisation_siret",
        sa.Column("siret", sqlmodel.sql.sqltypes.AutoString(length=14), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_organisation_siret_organisation_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("siret", name=op.f("pk_organisation_siret")),
    )
    with op.batch_alter_table("organisation_siret", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organisation_siret_organisation_id"), ["organisation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("organisation_siret", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisation_siret_organisation_id"))
    op.drop_table("organisation_siret")
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_attempt_expires_at"))
    op.drop_table("login_attempt")
