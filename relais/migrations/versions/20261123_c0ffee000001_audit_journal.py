"""audit journal: Merkle leaves, signed checkpoints, purges, tree head; append-only triggers

Events already in ``audit_event`` become the first leaves, in ``seq`` order. From here on the
journal tables refuse UPDATE and DELETE: the row is left as it was and the attempt is itself
written to the journal as a ``security`` event (SQLite ``RAISE(IGNORE)``, PostgreSQL a
trigger returning NULL). The one exception: deleting the payload of an event whose leaf is
covered by a signed purge (``relais audit purge``). TRUNCATE is refused on PostgreSQL.

On PostgreSQL, when ``RELAIS_AUDIT_APP_ROLE`` names the role the application connects as
(migrations then run as the tables' owner), that role gets SELECT and INSERT on the journal
tables and nothing else: no UPDATE, DELETE or TRUNCATE.

Revision ID: c0ffee000001
Revises: ae57c548ff78
"""

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c0ffee000001"
down_revision: str | None = "ae57c548ff78"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOURNAL_TABLES = ("audit_event", "audit_leaf", "audit_checkpoint", "audit_purge")
# audit.journal.SEQUENCER_LOCK_KEY, frozen here.
_LOCK_KEY = 0x52454C4149534155
_PURGED = (
    "EXISTS (SELECT 1 FROM audit_leaf l JOIN audit_purge p ON l.leaf_index < p.leaf_end WHERE l.event_id = OLD.id)"
)


def upgrade() -> None:
    op.create_table(
        "audit_leaf",
        sa.Column("leaf_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("leaf_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_audit_leaf")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_leaf_event_id")),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("issued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
    )
    op.create_table(
        "audit_purge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purged_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("cutoff", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("leaf_end", sa.Integer(), nullable=False),
        sa.Column("events_deleted", sa.Integer(), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_purge")),
    )
    head = op.create_table(
        "audit_tree_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("frontier", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_tree_head")),
    )
    _sequence_existing_events(head)
    # The Merkle tree head replaces the hash chain's tip: appends no longer lock one row.
    op.drop_table("audit_chain_head")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE IF NOT EXISTS audit_event_seq_seq")
        op.execute("SELECT setval('audit_event_seq_seq', (SELECT coalesce(max(seq), 0) + 1 FROM audit_event), false)")
        _postgresql_triggers()
        _postgresql_grants()
    else:
        _sqlite_triggers()


def _sequence_existing_events(head: sa.Table) -> None:
    """The events of the hash-chained journal become leaves 0..n-1, in their chain order."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_AUDIT_EVENT.c.id, *[_AUDIT_EVENT.c[name] for name in _CONTENT_FIELDS]).order_by(_AUDIT_EVENT.c.seq)
    ).all()
    builder = _TreeBuilder()
    leaves = []
    for row in rows:
        leaf = _event_leaf_hash(row._mapping)
        leaves.append({"leaf_index": builder.size, "event_id": row.id, "leaf_hash": leaf.hex()})
        builder.append(leaf)
    if leaves:
        leaf_table = sa.table("audit_leaf", sa.column("leaf_index"), sa.column("event_id"), sa.column("leaf_hash"))
        op.bulk_insert(leaf_table, leaves)
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "tree_size": builder.size,
                "root_hash": builder.root().hex(),
                "last_seq": rows[-1].seq if rows else 0,
                "frontier": json.dumps(builder.frontier()),
            }
        ],
    )


# Frozen on purpose -----------------------------------------------------------------------
# The leaf hash of an event as ``audit.journal`` and ``audit.merkle`` computed it when this
# revision was written (content format version 1, RFC 6962 hashing), and the columns of
# ``audit_event`` it reads, as they stood at this revision. A migration must produce the same
# data whenever it runs: do NOT update this copy to follow later changes of the audit domain
# (a new content format is a new revision's business).

# audit.journal.CONTENT_FIELDS at this revision.
_CONTENT_FIELDS = (
    "seq",
    "occurred_at",
    "request_id",
    "channel",
    "operation",
    "client_id",
    "organisation",
    "agent_nom",
    "agent_prenom",
    "agent_identifiant",
    "usager_id",
    "usager_nir_index",
    "decision",
    "reason",
    "http_status",
    "agent_id",
    "habilitation_id",
    "acr",
    "scopes",
    "purpose",
    "data_origin",
    "upstream_request_id",
    "target",
    "details",
)
_CONTENT_VERSION = 1
# The columns a leaf covers, typed as the application read them at this revision.
_COLUMN_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "seq": sa.Integer(),
    "occurred_at": sqlmodel.sql.sqltypes.UTCDateTime(),
    "http_status": sa.Integer(),
    "agent_id": sa.Integer(),
    "details": sa.JSON(),
}
_AUDIT_EVENT = sa.table(
    "audit_event",
    sa.column("id", sa.Integer()),
    *[sa.column(name, _COLUMN_TYPES.get(name, sa.String())) for name in _CONTENT_FIELDS],
)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_EMPTY_ROOT = hashlib.sha256(b"").digest()


def _timestamp_text(value: datetime) -> str:
    """audit.journal.timestamp_text: RFC 3339 UTC with microseconds."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def _event_leaf_hash(event: Mapping[Any, Any]) -> bytes:
    """audit.journal.event_leaf_hash of a row: canonical JSON of its content, RFC 6962 leaf hash."""
    content = {name: event.get(name) for name in _CONTENT_FIELDS}
    occurred_at = content["occurred_at"]
    if isinstance(occurred_at, datetime):
        content["occurred_at"] = _timestamp_text(occurred_at)
    document = {**content, "v": _CONTENT_VERSION}
    return _leaf_hash(_ENCODER.encode(document).encode())


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class _TreeBuilder:
    """audit.merkle.TreeBuilder: the roots of the perfect subtrees of the leaves so far."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        stack = self._stack
        height, node = 0, leaf
        while stack and stack[-1][0] == height:
            node = _node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
        self.size += 1

    def frontier(self) -> list[str]:
        return [node.hex() for _, node in self._stack]

    def root(self) -> bytes:
        if not self._stack:
            return _EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = _node_hash(left, node)
        return node


def _sqlite_security_event(what: str) -> str:
    """Insert one ``security`` event per statement and kind of attempt, then skip the row."""
    now = "strftime('%Y-%m-%d %H:%M:%S', 'now') || '.000000'"
    next_seq = "(SELECT coalesce(max(seq), 0) + 1 FROM audit_event)"
    return (
        "INSERT INTO audit_event (seq, occurred_at, request_id, channel, operation, decision, reason,"
        " http_status, details, prev_hash, hash)"
        f" SELECT {next_seq}, {now}, 'trigger', 'security', 'journal.modification_refusee', 'denied',"
        f" '{what}', 403, NULL, '', 'pending-' || {next_seq}"
        " WHERE NOT EXISTS (SELECT 1 FROM audit_event WHERE channel = 'security'"
        f" AND reason = '{what}' AND occurred_at = {now});"
        " SELECT RAISE(IGNORE);"
    )


def _sqlite_triggers() -> None:
    for table in JOURNAL_TABLES:
        for operation in ("UPDATE", "DELETE"):
            when = f" WHEN NOT {_PURGED}" if (table, operation) == ("audit_event", "DELETE") else ""
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{operation.lower()} BEFORE {operation} ON {table}{when}"
                f" BEGIN {_sqlite_security_event(f'{operation}:{table}')} END"
            )


def _postgresql_triggers() -> None:
    op.execute(
        f"""
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
                VALUES (next_seq, now(), 'trigger', 'security', 'journal.modification_refusee', 'denied', what,
                        403, NULL, '', 'pending-' || next_seq);
            END IF;
            RETURN NULL;
        END $$
        """
    )
    for table in JOURNAL_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION relais_audit_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION relais_audit_append_only()"
        )


def _postgresql_grants() -> None:
    role = _audit_app_role()
    if not role:
        return
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError("RELAIS_AUDIT_APP_ROLE : nom de rôle PostgreSQL invalide")
    tables = ", ".join(JOURNAL_TABLES)
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {tables} FROM {role}")
    op.execute(f"GRANT SELECT, INSERT ON {tables} TO {role}")
    op.execute(f"GRANT SELECT, UPDATE ON audit_tree_head TO {role}")
    op.execute(
        "GRANT USAGE, SELECT ON SEQUENCE audit_event_seq_seq, audit_event_id_seq, audit_checkpoint_id_seq,"
        f" audit_purge_id_seq TO {role}"
    )


def _audit_app_role() -> str:
    """``RELAIS_AUDIT_APP_ROLE``, read from the environment as ``relais.core.config`` reads it
    (case-insensitive name, empty by default), without importing the application."""
    for name, value in os.environ.items():
        if name.upper() == "RELAIS_AUDIT_APP_ROLE":
            return value
    return ""


def downgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.execute(
        "INSERT INTO audit_chain_head (id, seq, hash) SELECT 1, coalesce(max(seq), 0),"
        f" coalesce((SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1), '{'0' * 64}') FROM audit_event"
    )
    for table in JOURNAL_TABLES:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_delete")
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS relais_audit_append_only()")
        op.execute("DROP SEQUENCE IF EXISTS audit_event_seq_seq")
    op.drop_table("audit_tree_head")
    op.drop_table("audit_purge")
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_leaf")
