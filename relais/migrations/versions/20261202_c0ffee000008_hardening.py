"""hardening: distinct trigger events in the journal; national producer clients

The append-only triggers of ``c0ffee000001`` wrote every refused UPDATE/DELETE with request
id ``trigger``: two attempts in the same second (say ``UPDATE:audit_event`` then
``DELETE:audit_event``) made two events that looked like a replayed copy of one another, and
``relais audit verify`` reported a break that never happened. From here on each security event
the triggers write carries its own request id, ``trigger:<seq>``: a distinct leaf by
construction. The triggers are otherwise unchanged (one event per statement and kind of
attempt, the row left as it was, the purge exception, TRUNCATE refused on PostgreSQL).

``client.national``: a producer client whose organisation may write for usagers of every
territory (France Travail's own clients); the others write only inside their territory.

Revision ID: c0ffee000008
Revises: c0ffee000007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0ffee000008"
down_revision: str | None = "c0ffee000007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of c0ffee000001's names and conditions: do not follow later changes.
JOURNAL_TABLES = ("audit_event", "audit_leaf", "audit_checkpoint", "audit_purge")
# audit.journal.SEQUENCER_LOCK_KEY at this revision.
_LOCK_KEY = 0x52454C4149534155
_PURGED = (
    "EXISTS (SELECT 1 FROM audit_leaf l JOIN audit_purge p ON l.leaf_index < p.leaf_end WHERE l.event_id = OLD.id)"
)


def upgrade() -> None:
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("national", sa.Boolean(), nullable=False, server_default=sa.false()))
    _replace_triggers(distinct=True)


def downgrade() -> None:
    _replace_triggers(distinct=False)
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.drop_column("national")


def _replace_triggers(*, distinct: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # CREATE OR REPLACE keeps the triggers bound to the function.
        op.execute(_postgresql_function(distinct))
        return
    for table in JOURNAL_TABLES:
        for operation in ("UPDATE", "DELETE"):
            name = f"{table}_append_only_{operation.lower()}"
            when = f" WHEN NOT {_PURGED}" if (table, operation) == ("audit_event", "DELETE") else ""
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {operation} ON {table}{when}"
                f" BEGIN {_sqlite_security_event(f'{operation}:{table}', distinct)} END"
            )


def _sqlite_security_event(what: str, distinct: bool) -> str:
    """Insert one ``security`` event per statement and kind of attempt, then skip the row."""
    now = "strftime('%Y-%m-%d %H:%M:%S', 'now') || '.000000'"
    next_seq = "(SELECT coalesce(max(seq), 0) + 1 FROM audit_event)"
    request_id = f"'trigger:' || {next_seq}" if distinct else "'trigger'"
    return (
        "INSERT INTO audit_event (seq, occurred_at, request_id, channel, operation, decision, reason,"
        " http_status, details, prev_hash, hash)"
        f" SELECT {next_seq}, {now}, {request_id}, 'security', 'journal.modification_refusee', 'denied',"
        f" '{what}', 403, NULL, '', 'pending-' || {next_seq}"
        " WHERE NOT EXISTS (SELECT 1 FROM audit_event WHERE channel = 'security'"
        f" AND reason = '{what}' AND occurred_at = {now});"
        " SELECT RAISE(IGNORE);"
    )


def _postgresql_function(distinct: bool) -> str:
    request_id = "'trigger:' || next_seq" if distinct else "'trigger'"
    return f"""
        CREATE OR REPLACE FUNCTION relais_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            what text := TG_OP || ':' || TG_TABLE_NAME;
            next_seq bigint;
        BEGIN
            IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_event' THEN
                IF {_PURGED} THEN
                    RETURN OLD;
                END IF;
            END IF;
            IF TG_OP = 'TRUNCATE' THEN
                RAISE EXCEPTION 'relais : journal d''audit en ajout seul, % refusé', what
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RAISE WARNING 'relais : journal d''audit en ajout seul, % refusé (rôle %)', what, current_user;
            IF NOT EXISTS (
                SELECT 1 FROM audit_event WHERE channel = 'security' AND reason = what AND occurred_at = now()
            ) THEN
                PERFORM pg_advisory_xact_lock_shared({_LOCK_KEY});
                next_seq := nextval('audit_event_seq_seq');
                INSERT INTO audit_event (seq, occurred_at, request_id, channel, operation, decision, reason,
                                         http_status, details, prev_hash, hash)
                VALUES (next_seq, now(), {request_id}, 'security', 'journal.modification_refusee', 'denied', what,
                        403, NULL, '', 'pending-' || next_seq);
            END IF;
            RETURN NULL;
        END $$
        """
