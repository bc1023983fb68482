"""inbound and gateway: the gateway's jeton map, imported files, pull connector cursors

Revision ID: c0ffee000007
Revises: c0ffee000006
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c0ffee000007"
down_revision: str | None = "c0ffee000006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gateway_jeton',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('jeton_chiffre', sa.Text(), nullable=False),
    sa.Column('nir_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_jeton'))
    )
    with op.batch_alter_table('gateway_jeton', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_jeton_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gateway_jeton_expires_at'), ['expires_at'], unique=False)

    op.create_table('imported_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('imported_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imported_file')),
    sa.UniqueConstraint('sha256', 'format', name=op.f('uq_imported_file_sha256'))
    )
    with op.batch_alter_table('imported_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imported_file_sha256'), ['sha256'], unique=False)

    op.create_table('pull_cursor',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('cursor', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('last_run_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_pull_cursor'))
    )


def downgrade() -> None:
    op.drop_table('pull_cursor')
    with op.batch_alter_table('imported_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_imported_file_sha256'))

    op.drop_table('imported_file')
    with op.batch_alter_table('gateway_jeton', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_jeton_expires_at'))
        batch_op.drop_index(batch_op.f('ix_gateway_jeton_client_id'))

    op.drop_table('gateway_jeton')
