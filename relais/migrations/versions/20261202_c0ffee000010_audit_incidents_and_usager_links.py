"""audit: incident severity, assignee and notifications; refusals linked to the usager they named

Refused partner calls carry the usager their jeton named in the existing ``usager_id`` and
``usager_nir_index`` columns of ``audit_event`` (already indexed with ``id``): no schema change
is needed for them; this revision adds what the incidents board records.

Revision ID: c0ffee000010
Revises: c0ffee000009
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c0ffee000010"
down_revision: str | None = "c0ffee000009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_incident", schema=None) as batch_op:
        # Existing incidents start at "moyenne", as the detector opens new ones.
        batch_op.add_column(
            sa.Column("gravite", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="moyenne")
        )
        batch_op.add_column(sa.Column("assigne_agent_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_incident_assigne_agent_id"), ["assigne_agent_id"], unique=False)
    op.create_table(
        "audit_incident_notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("destinataire", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("notifie_le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("enregistre_le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("auteur", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["audit_incident.id"],
            name=op.f("fk_audit_incident_notification_incident_id_audit_incident"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_incident_notification")),
    )
    with op.batch_alter_table("audit_incident_notification", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_incident_notification_incident_id"), ["incident_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_incident_notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_incident_notification_incident_id"))
    op.drop_table("audit_incident_notification")
    with op.batch_alter_table("audit_incident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_incident_assigne_agent_id"))
        batch_op.drop_column("assigne_agent_id")
        batch_op.drop_column("gravite")
