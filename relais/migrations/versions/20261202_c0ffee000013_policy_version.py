"""habilitations: the policy version counter the request path checks

Every insert, update or delete on a table the habilitation decision reads bumps the one row
of ``policy_version``, by a trigger, in the changing transaction: the request path remembers
decisions per version (``habilitations.policy_cache``) and one primary-key read tells it
whether anything changed, whichever process or replica made the change.

Revision ID: c0ffee000013
Revises: c0ffee000012
"""

import os
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0ffee000013"
down_revision: str | None = "c0ffee000012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of habilitations.policy_cache.POLICY_TABLES at this revision.
POLICY_TABLES = ("organisation", "client", "agent", "habilitation", "souscription", "designation")
_BUMP = "UPDATE policy_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "policy_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_version")),
    )
    op.execute("INSERT INTO policy_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION relais_policy_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {_BUMP}; RETURN NULL; END $$"
        )
        for table in POLICY_TABLES:
            # Once per statement: a bulk change bumps once, and TRUNCATE is covered too.
            op.execute(
                f"CREATE TRIGGER {table}_policy_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION relais_policy_version_bump()"
            )
        role = _app_role()
        if role:
            op.execute(f"GRANT SELECT, UPDATE ON policy_version TO {role}")
    else:
        for table in POLICY_TABLES:
            for operation in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_policy_version_{operation.lower()} AFTER {operation} ON {table}"
                    f" BEGIN {_BUMP}; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in POLICY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_policy_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS relais_policy_version_bump()")
    else:
        for table in POLICY_TABLES:
            for operation in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_policy_version_{operation}")
    op.drop_table("policy_version")


def _app_role() -> str:
    """``RELAIS_AUDIT_APP_ROLE`` (the restricted role the app runs as, when set), read as
    revision c0ffee000001 reads it."""
    for name, value in os.environ.items():
        if name.upper() == "RELAIS_AUDIT_APP_ROLE":
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
                raise ValueError("RELAIS_AUDIT_APP_ROLE : nom de rôle PostgreSQL invalide")
            return value
    return ""
