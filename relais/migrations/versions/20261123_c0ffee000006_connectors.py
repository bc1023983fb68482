"""connectors: outbound connector configuration, signing keys, delivery attempts

Revision ID: c0ffee000006
Revises: c0ffee000005
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c0ffee000006"
down_revision: str | None = "c0ffee000005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connector",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("format", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("notifications", sa.Boolean(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("pause_reason", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("paused_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisation.id"], name=op.f("fk_connector_organisation_id_organisation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector")),
    )
    with op.batch_alter_table("connector", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_connector_name"), ["name"], unique=True)
        batch_op.create_index(batch_op.f("ix_connector_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_connector_state"), ["state"], unique=False)

    op.create_table(
        "connector_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("kid", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("secret_sealed", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("retired_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connector_id"], ["connector.id"], name=op.f("fk_connector_key_connector_id_connector")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_key")),
        sa.UniqueConstraint("kid", name=op.f("uq_connector_key_kid")),
    )
    with op.batch_alter_table("connector_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_connector_key_connector_id"), ["connector_id"], unique=False)

    op.create_table(
        "delivery_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connector_id"], ["connector.id"], name=op.f("fk_delivery_attempt_connector_id_connector")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["outbox_message.id"], name=op.f("fk_delivery_attempt_message_id_outbox_message")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempt")),
    )
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_attempt_attempted_at"), ["attempted_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_attempt_connector_id"), ["connector_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_attempt_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempt_message_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_attempt_connector_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_attempt_attempted_at"))
    op.drop_table("delivery_attempt")
    with op.batch_alter_table("connector_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connector_key_connector_id"))
    op.drop_table("connector_key")
    with op.batch_alter_table("connector", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connector_state"))
        batch_op.drop_index(batch_op.f("ix_connector_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_connector_name"))
    op.drop_table("connector")
