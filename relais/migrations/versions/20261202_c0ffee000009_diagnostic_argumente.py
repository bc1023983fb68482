"""diagnostic argumente: the usager's diagnostics (Diagnostic argumenté v4)

Revision ID: c0ffee000009
Revises: c0ffee000008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c0ffee000009"
down_revision: str | None = "c0ffee000008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('diagnostic_argumente',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('usager_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('code_typologie', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('code_sous_typologie', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('code_rome', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('code_appellation', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('id_metier_chiffre', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('nom_metier', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('statut', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('est_prioritaire', sa.Boolean(), nullable=False),
    sa.Column('est_creation_partenaire', sa.Boolean(), nullable=False),
    sa.Column('agent_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('agent_nom', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('agent_prenom', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('agent_structure', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('date_mise_a_jour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('date_mise_a_jour_projet', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_diagnostic_argumente_organisation_id_organisation')),
    sa.ForeignKeyConstraint(['usager_id'], ['usager.id'], name=op.f('fk_diagnostic_argumente_usager_id_usager')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_diagnostic_argumente'))
    )
    with op.batch_alter_table('diagnostic_argumente', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_diagnostic_argumente_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_diagnostic_argumente_usager_id'), ['usager_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('diagnostic_argumente', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_diagnostic_argumente_usager_id'))
        batch_op.drop_index(batch_op.f('ix_diagnostic_argumente_organisation_id'))
    op.drop_table('diagnostic_argumente')
