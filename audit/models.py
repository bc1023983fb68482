"""Tables of the verifiable journal: Merkle leaves, signed checkpoints, purges, the tree head.

``audit_event`` holds each event's content; the other tables turn the events into a Merkle
tree. Leaves, checkpoints and purges are append-only (database triggers, see
the migration ``c0ffee000001``); only the head row moves, and it is recomputable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Sequence, UniqueConstraint
from sqlmodel import Field, SQLModel

from relais.core.tables import metadata

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


class AuditEvent(SQLModel, table=True):
    """One partner or admin call, allowed or denied. Append-only and hash-chained."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("seq"),)

    id: int | None = Field(default=None, primary_key=True)
    # Position in the chain, gap-free from 1.
    seq: int
    occurred_at: datetime
    request_id: str = Field(max_length=64)
    channel: str = Field(max_length=16)  # partner-api, producer-feed, oauth, admin-api, cli, adapter
    operation: str = Field(max_length=128, index=True)
    client_id: str | None = Field(default=None, max_length=64, index=True)
    organisation: str | None = Field(default=None, max_length=32, index=True)
    agent_nom: str | None = Field(default=None, max_length=100)
    agent_prenom: str | None = Field(default=None, max_length=100)
    agent_identifiant: str | None = Field(default=None, max_length=100, index=True)
    usager_id: str | None = Field(default=None, max_length=32, index=True)
    usager_nir_index: str | None = Field(default=None, max_length=64, index=True)
    decision: str = Field(max_length=16)  # allowed, denied, error
    reason: str | None = Field(default=None, max_length=255)
    http_status: int
    # Who, beyond the headers: the agent record and the habilitation the call was made under,
    # and the ProConnect ``acr`` of a human login.
    agent_id: int | None = Field(default=None, index=True)
    habilitation_id: str | None = Field(default=None, max_length=32, index=True)
    acr: str | None = Field(default=None, max_length=128)
    # Scopes the operation used, space-separated.
    scopes: str | None = Field(default=None, max_length=1024)
    purpose: str | None = Field(default=None, max_length=255)
    # Where the data came from: "reference-store", "france-travail", "connecteur:<name>", "fichier:<sha256>".
    data_origin: str | None = Field(default=None, max_length=128)
    upstream_request_id: str | None = Field(default=None, max_length=128)
    # What an admin action or a lifecycle transition acted upon, e.g. "habilitation:<id>".
    target: str | None = Field(default=None, max_length=128, index=True)
    # Structured, value-free details of an admin action (states before/after, counts).
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
