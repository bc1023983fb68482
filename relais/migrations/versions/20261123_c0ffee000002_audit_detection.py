"""audit detection: incidents, their evidence and transitions, the detector's watermark, search indexes

Revision ID: c0ffee000002
Revises: c0ffee000001
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c0ffee000002"
down_revision: str | None = "c0ffee000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AUDIT_EVENT_INDEXES = (
    ("ix_audit_event_agent_identifiant_occurred_at", ["agent_identifiant", "occurred_at"]),
    ("ix_audit_event_client_id_occurred_at", ["client_id", "occurred_at"]),
    ("ix_audit_event_occurred_at", ["occurred_at"]),
    ("ix_audit_event_organisation_occurred_at", ["organisation", "occurred_at"]),
    ("ix_audit_event_usager_id_id", ["usager_id", "id"]),
    ("ix_audit_event_usager_nir_index_id", ["usager_nir_index", "id"]),
)


def upgrade() -> None:
    detector = op.create_table(
        "audit_detector_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watermark", sa.Integer(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_detector_state")),
    )
    op.bulk_insert(detector, [{"id": 1, "watermark": 0, "updated_at": datetime.now(UTC)}])
    op.create_table(
        "audit_incident",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("regle", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("etat", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("organisation", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("sujet", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("resume", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("detecte_le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("echeance_notification", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("qualifie_le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("notifie_le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("clos_le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("cle_ouverte", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("nombre_preuves", sa.Integer(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_incident")),
        sa.UniqueConstraint("cle_ouverte", name=op.f("uq_audit_incident_cle_ouverte")),
    )
    with op.batch_alter_table("audit_incident", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_incident_detecte_le"), ["detecte_le"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_incident_etat"), ["etat"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_incident_organisation"), ["organisation"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_incident_regle"), ["regle"], unique=False)

    op.create_table(
        "audit_incident_preuve",
        sa.Column("incident_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("audit_event_id", sa.Integer(), nullable=False),
        sa.Column("ajoute_le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["audit_incident.id"],
            name=op.f("fk_audit_incident_preuve_incident_id_audit_incident"),
        ),
        sa.PrimaryKeyConstraint("incident_id", "audit_event_id", name=op.f("pk_audit_incident_preuve")),
    )
    op.create_table(
        "audit_incident_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("etat_avant", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("etat_apres", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("le", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("auteur", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("commentaire", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["audit_incident.id"],
            name=op.f("fk_audit_incident_transition_incident_id_audit_incident"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_incident_transition")),
    )
    with op.batch_alter_table("audit_incident_transition", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_incident_transition_incident_id"), ["incident_id"], unique=False
        )

    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for name, columns in _AUDIT_EVENT_INDEXES:
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for name, _ in reversed(_AUDIT_EVENT_INDEXES):
            batch_op.drop_index(name)
    with op.batch_alter_table("audit_incident_transition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_incident_transition_incident_id"))
    op.drop_table("audit_incident_transition")
    op.drop_table("audit_incident_preuve")
    with op.batch_alter_table("audit_incident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_incident_regle"))
        batch_op.drop_index(batch_op.f("ix_audit_incident_organisation"))
        batch_op.drop_index(batch_op.f("ix_audit_incident_etat"))
        batch_op.drop_index(batch_op.f("ix_audit_incident_detecte_le"))
    op.drop_table("audit_incident")
    op.drop_table("audit_detector_state")
