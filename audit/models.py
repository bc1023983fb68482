"""Tables of the verifiable journal: Merkle leaves, signed checkpoints, purges, the tree head.

``audit_event`` (relais/models.py) holds each event's content; these tables turn the events
into a Merkle tree. Leaves, checkpoints and purges are append-only (database triggers, see
the migration ``c0ffee000001``); only the head row moves, and it is recomputable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Sequence
from sqlmodel import Field, SQLModel

from relais.models import metadata

# PostgreSQL hands out audit_event.seq from this sequence, so that concurrent requests never
# wait on each other to append (SQLite serialises writers and uses max(seq) + 1). Declared on
# the metadata so that a schema reset drops it too; the migration creates it.
AUDIT_EVENT_SEQ = Sequence("audit_event_seq_seq", metadata=metadata)


class AuditLeaf(SQLModel, table=True):
    """One event's place in the tree: gap-free ``leaf_index`` from 0, assigned by the sequencer."""

    __tablename__ = "audit_leaf"

    leaf_index: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    # audit_event.id; no foreign key: a purge deletes the event row and keeps its leaf.
    event_id: int = Field(unique=True)
    # RFC 6962 leaf hash of the event's canonical content, lowercase hex.
    leaf_hash: str = Field(max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement "the journal's first ``tree_size`` leaves have root ``root_hash``"."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    tree_size: int
    root_hash: str = Field(max_length=64)
    issued_at: datetime
    # First 16 hex digits of SHA-256 of the raw Ed25519 public key.
    key_id: str = Field(max_length=16)
    # Base64 Ed25519 signature of the checkpoint note (audit/checkpoints.py).
    signature: str = Field(max_length=128)


class AuditPurge(SQLModel, table=True):
    """A signed retention purge: the payloads of leaves [0, ``leaf_end``) were deleted."""

    __tablename__ = "audit_purge"

    id: int | None = Field(default=None, primary_key=True)
    purged_at: datetime
    # Events that occurred before this instant were purged (now - retention).
    cutoff: datetime
    leaf_end: int
    events_deleted: int
    # The signed checkpoint, made just before, that covers every purged leaf.
    checkpoint_id: int
    key_id: str = Field(max_length=16)
    signature: str = Field(max_length=128)


class AuditTreeHead(SQLModel, table=True):
    """The sequencer's position: tree size and root, and the highest event ``seq`` sequenced.

    Only the sequencer locks it (never a request); ``relais audit verify`` recomputes it.
    """

    __tablename__ = "audit_tree_head"

    id: int = Field(default=1, primary_key=True)
    tree_size: int = 0
    root_hash: str = Field(max_length=64)
    last_seq: int = 0
    # Roots of the perfect subtrees the leaves decompose into (hex, JSON list): enough to
    # extend the tree without reading its leaves again.
    frontier: str = "[]"
