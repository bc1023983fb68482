"""Signed checkpoints of the journal's Merkle tree, and the proofs that hang on them.

A checkpoint is an Ed25519 signature over a short text note, in the spirit of C2SP's
tlog-checkpoint::

    relais.audit/v1
    <tree size>
    <root hash, base64>
    <issued at, RFC 3339 UTC>

The signing key is a PKCS#8 PEM file of its own (``RELAIS_AUDIT_SIGNING_KEY_FILE``, by
default ``<data dir>/audit-signing-key.pem``, mode 0600), never in the database: whoever can
rewrite the database cannot sign a rewritten tree. ``relais audit public-key`` prints the
public half, which a CSSI keeps to verify exports and checkpoints offline.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from audit import merkle
from audit.journal import SEQUENCING_STEP, sequence_in, sequence_pending
from audit.models import AuditCheckpoint, AuditLeaf, AuditTreeHead
from relais.core.config import Settings
from relais.core.db import Database

log = structlog.get_logger("relais.audit")

ORIGIN = "relais.audit/v1"


# Keys ----------------------------------------------------------------------------------------


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} : ce n'est pas une clé Ed25519")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    log.info("audit_signing_key_created", key_id=key_id(key.public_key()))
    return key


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    return load_or_create_signing_key(settings.resolved_audit_signing_key_file)


def public_key_pem(settings: Settings) -> str:
    public = signing_key(settings).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("ce n'est pas une clé publique Ed25519")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# Notes and signatures ------------------------------------------------------------------------


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def checkpoint_note(tree_size: int, root_hash: str, issued_at: datetime) -> str:
    root = base64.b64encode(bytes.fromhex(root_hash)).decode()
    return f"{ORIGIN}\n{tree_size}\n{root}\n{_rfc3339(issued_at)}\n"


def purge_note(leaf_end: int, cutoff: datetime, purged_at: datetime, checkpoint_id: int) -> str:
    return f"{ORIGIN} purge\n{leaf_end}\n{_rfc3339(cutoff)}\n{_rfc3339(purged_at)}\n{checkpoint_id}\n"


def sign(private: Ed25519PrivateKey, note: str) -> str:
    return base64.b64encode(private.sign(note.encode())).decode()


def signature_valid(public: Ed25519PublicKey, note: str, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), note.encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_json(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "id": checkpoint.id,
        "treeSize": checkpoint.tree_size,
        "rootHash": checkpoint.root_hash,
        "issuedAt": _rfc3339(checkpoint.issued_at),
        "keyId": checkpoint.key_id,
        "signature": checkpoint.signature,
        "note": checkpoint_note(checkpoint.tree_size, checkpoint.root_hash, checkpoint.issued_at),
    }


# Making checkpoints --------------------------------------------------------------------------


def checkpoint_in(
    session: Session, private: Ed25519PrivateKey, *, now: datetime, force: bool = False
) -> AuditCheckpoint | None:
    """Sequence what is committed, then sign the head (in ``session``; the caller commits)."""
    sequence_in(session)
    head = session.exec(select(AuditTreeHead).where(AuditTreeHead.id == 1)).one()
    last = latest_checkpoint(session)
    if not force and last is not None and last.tree_size == head.tree_size:
        return None
    if not force and last is None and head.tree_size == 0:
        return None
    checkpoint = AuditCheckpoint(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        issued_at=now,
        key_id=key_id(private.public_key()),
        signature=sign(private, checkpoint_note(head.tree_size, head.root_hash, now)),
    )
    session.add(checkpoint)
    session.flush()
    log.info("audit_checkpoint", tree_size=checkpoint.tree_size, checkpoint_id=checkpoint.id)
    return checkpoint


def create_checkpoint(
    database: Database, settings: Settings, *, now: datetime, force: bool = False
) -> AuditCheckpoint | None:
    """Sequence pending events and sign a checkpoint of the tree; None when nothing is new.

    On SQLite the backlog is first sequenced by short steps (``sequence_pending``): its one
    writer, held by five busy minutes of events in one transaction, kept every call whose audit
    event waited behind it for seconds (hub-added p99 at half of peak 84 ms while the
    checkpoint ran every 15 s, 21 ms by steps, 8.9 ms without it: bench/run.py). The last
    events come in the signing transaction. PostgreSQL's appends never wait for the
    sequencer's transaction, only for its brief exclusive lock, taken once per transaction:
    there one transaction does it all."""
    private = signing_key(settings)
    if database.dialect == "sqlite":
        sequence_pending(database, step=SEQUENCING_STEP)
    with database.transaction() as session:
        return checkpoint_in(session, private, now=now, force=force)


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.id).desc()).limit(1)).first()


def checkpoint_for_size(session: Session, tree_size: int) -> AuditCheckpoint | None:
    return session.exec(
        select(AuditCheckpoint).where(AuditCheckpoint.tree_size == tree_size).order_by(col(AuditCheckpoint.id)).limit(1)
    ).first()


# Proofs --------------------------------------------------------------------------------------


def leaf_hashes(session: Session, tree_size: int) -> list[bytes]:
    """The first ``tree_size`` leaf hashes, in order."""
    rows = session.execute(
        sa_select(col(AuditLeaf.leaf_hash))
        .where(col(AuditLeaf.leaf_index) < tree_size)
        .order_by(col(AuditLeaf.leaf_index))
    ).scalars()
    hashes = [bytes.fromhex(value) for value in rows]
    if len(hashes) != tree_size:
        raise ValueError("feuilles manquantes : l'arbre n'a pas cette taille")
    return hashes


@dataclass(frozen=True)
class InclusionProof:
    event_id: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    path: list[str]
    root_hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "leafIndex": self.leaf_index,
            "treeSize": self.tree_size,
            "leafHash": self.leaf_hash,
            "path": self.path,
            "rootHash": self.root_hash,
        }


class ProofTree:
    """A tree of a given size held in memory, to answer many inclusion proofs (exports).

    Leaves are append-only, so the tree of a given size never changes: the last few built are
    kept per database, and a proof request against the latest checkpoint does not re-read a
    million leaf hashes each time.
    """

    _cache: ClassVar[OrderedDict[tuple[str, int], merkle.TreeLevels]] = OrderedDict()
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()
    CACHED_TREES: ClassVar[int] = 2

    def __init__(self, session: Session, tree_size: int) -> None:
        self.tree_size = tree_size
        bind = session.get_bind()
        key = (str(getattr(bind, "url", id(bind))), tree_size)
        # The database may have been replaced under the same URL (tests, restores): the last
        # leaf must still be the one the cached tree was built with.
        last = session.execute(
            sa_select(col(AuditLeaf.leaf_hash)).where(col(AuditLeaf.leaf_index) == tree_size - 1)
        ).scalar_one_or_none()
        with self._cache_lock:
            levels = self._cache.get(key)
            if levels is not None and (last is None or levels.leaf(tree_size - 1) != bytes.fromhex(last)):
                levels = None
            if levels is not None:
                self._cache.move_to_end(key)
        if levels is None:
            levels = merkle.TreeLevels(leaf_hashes(session, tree_size))
            with self._cache_lock:
                self._cache[key] = levels
                while len(self._cache) > self.CACHED_TREES:
                    self._cache.popitem(last=False)
        self.levels = levels

    def root_hash(self) -> str:
        return self.levels.root().hex()

    def path(self, leaf_index: int) -> list[str]:
        return [node.hex() for node in self.levels.inclusion_proof(leaf_index)]


def inclusion_proof(session: Session, event_id: int, tree_size: int | None = None) -> InclusionProof | None:
    """The event's audit path in the tree of ``tree_size`` (default: the latest checkpoint's)."""
    if tree_size is None:
        checkpoint = latest_checkpoint(session)
        if checkpoint is None:
            return None
        tree_size = checkpoint.tree_size
    leaf = session.exec(select(AuditLeaf).where(AuditLeaf.event_id == event_id)).first()
    if leaf is None or leaf.leaf_index >= tree_size:
        return None
    tree = ProofTree(session, tree_size)
    return InclusionProof(
        event_id=event_id,
        leaf_index=leaf.leaf_index,
        tree_size=tree_size,
        leaf_hash=leaf.leaf_hash,
        path=tree.path(leaf.leaf_index),
        root_hash=tree.root_hash(),
    )


def consistency_proof(session: Session, first_size: int, second_size: int) -> list[str]:
    """RFC 6962 proof that the tree of ``first_size`` leaves is a prefix of the one of ``second_size``."""
    if not 0 < first_size <= second_size:
        raise ValueError("tailles d'arbre incohérentes")
    levels = ProofTree(session, second_size).levels
    return [node.hex() for node in levels.consistency_proof(first_size)]
