"""Offline verification of the journal — a database or an export file — against the public key.

What a successful verification proves: every leaf hash is the hash of its event's content as
stored (no altered payload); leaves run from 0 without a gap, in the order the events were
written (``seq`` strictly increasing: no reordered leaf, no replayed segment); every
checkpoint is signed by a key given to the verifier and its root is the root of the tree
recomputed from the leaves at its size (no forked checkpoint, no truncated tail); every
missing payload lies below a signed purge. Anyone who rewrites the database must also rewrite
the leaves and cannot re-sign the checkpoints without the signing key, which lives outside it.

Each finding is located (leaf index, event ``seq``, checkpoint id); the report's ``problem`` is
the first one in leaf order. The same checker runs over a database and over a full export
(``audit.export`` writes and documents the format); a selective export (search results) is
checked leaf by leaf with its inclusion proofs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Table, func, select
from sqlmodel import Session

from audit import merkle, verify_scan
from audit.checkpoints import checkpoint_note, key_id, purge_note, signature_valid
from audit.export import EXPORT_TYPE, EXPORT_VERSION, select_all
from audit.journal import (
    CONTENT_FIELDS,
    TRIGGER_CHANNEL,
    TRIGGER_OPERATION,
    UNCHAINED,
    leaf_bytes,
    replay_key,
    timestamp_text,
)
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditPurge, AuditTreeHead
from audit.verify_scan import Progress

_MAX_PROBLEMS = 50
# Refused modification attempts listed one by one in a report; beyond, only counted.
_MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class Problem:
    # contenu_modifie, feuille_manquante, ordre_modifie, segment_rejoue, evenement_supprime,
    # journal_tronque, point_de_controle_divergent, signature_invalide, cle_inconnue,
    # purge_non_signee, tete_incoherente, evenement_hors_arbre, preuve_invalide, format_invalide
    kind: str
    message: str
    leaf_index: int | None = None
    seq: int | None = None
    checkpoint_id: int | None = None


@dataclass
class VerifyReport:
    leaves: int = 0
    events: int = 0
    purged: int = 0
    pending: int = 0
    checkpoints: int = 0
    signatures_checked: bool = False
    purges: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # UPDATE/DELETE attempts the append-only triggers refused and journalled: honest leaves
    # (the journal held), listed so that the security officer sees them.
    attempts: int = 0
    attempt_list: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def problem(self) -> str | None:
        return self.problems[0].message if self.problems else None

    def summary(self) -> str:
        if self.ok:
            signed = "signatures vérifiées" if self.signatures_checked else "signatures NON vérifiées (aucune clé)"
            text = (
                f"Journal intègre : {self.leaves} feuilles, {self.events} événements, "
                f"{self.checkpoints} points de contrôle ({signed})"
            )
            if self.purged:
                text += f", {self.purged} contenus purgés"
            if self.pending:
                text += f", {self.pending} événements pas encore scellés"
            if self.attempts:
                text += f", {self.attempts} tentatives de modification refusées par le journal"
            return text + "."
        return f"Journal NON intègre : {self.problems[0].message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "leaves": self.leaves,
            "events": self.events,
            "purged": self.purged,
            "pending": self.pending,
            "checkpoints": self.checkpoints,
            "signaturesChecked": self.signatures_checked,
            "purges": self.purges,
            "attempts": self.attempts,
            "attemptList": self.attempt_list,
            "problems": [problem.__dict__ for problem in self.problems],
        }


@dataclass(frozen=True)
class _Checkpoint:
    id: int | None
    tree_size: int
    root_hash: str
    issued_at: datetime
    key_id: str
    signature: str

    def note(self) -> str:
        return checkpoint_note(self.tree_size, self.root_hash, self.issued_at)


@dataclass(frozen=True)
class _Purge:
    id: int | None
    leaf_end: int
    cutoff: datetime
    purged_at: datetime
    checkpoint_id: int
    events_deleted: int
    key_id: str
    signature: str


def _keys_by_id(public_keys: Iterable[Ed25519PublicKey] | None) -> dict[str, Ed25519PublicKey] | None:
    if public_keys is None:
        return None
    return {key_id(key): key for key in public_keys}


class _Checker:
    """Streams leaves in order and checks them, then the checkpoints against the recomputed roots."""

    def __init__(
        self,
        keys: dict[str, Ed25519PublicKey] | None,
        checkpoints: list[_Checkpoint],
        purges: list[_Purge],
        report: VerifyReport,
    ) -> None:
        self.keys = keys
        self.report = report
        self.builder = merkle.TreeBuilder()
        self.checkpoints = checkpoints
        self.roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        self.wanted = {checkpoint.tree_size for checkpoint in checkpoints}
        self.last_seq: int | None = None
        self.seen: set[int] = set()
        self.located: list[tuple[int, int, int, Problem]] = []
        report.checkpoints = len(checkpoints)
        report.signatures_checked = keys is not None
        self.purged_end = 0
        for purge in purges:
            report.purges.append(
                {
                    "id": purge.id,
                    "leafEnd": purge.leaf_end,
                    "cutoff": purge.cutoff.isoformat(),
                    "purgedAt": purge.purged_at.isoformat(),
                    "eventsDeleted": purge.events_deleted,
                }
            )
            if keys is not None and not self._signed(purge.key_id, purge.signature, _purge_note(purge)):
                self._add(
                    0,
                    Problem(
                        "purge_non_signee",
                        f"purge n° {purge.id} (feuilles 0 à {purge.leaf_end - 1}) sans signature valide",
                        leaf_index=0,
                    ),
                )
                continue
            self.purged_end = max(self.purged_end, purge.leaf_end)

    def _signed(self, kid: str, signature: str, note: str) -> bool:
        assert self.keys is not None
        key = self.keys.get(kid)
        return key is not None and signature_valid(key, note, signature)

    def _add(self, location: int, problem: Problem, rank: int = 0) -> None:
        """Record a finding; the report lists them by location, then rank, then discovery."""
        if len(self.located) < _MAX_PROBLEMS:
            self.located.append((location, rank, len(self.located), problem))

    def leaf(
        self,
        index: int,
        stored: bytes,
        content: Mapping[str, Any] | None,
        event_hash: str | None = None,
        chained: bool = False,
    ) -> None:
        expected = self.builder.size
        if index < expected:
            self._add(index, Problem("segment_rejoue", f"feuille {index} présente une seconde fois", leaf_index=index))
            return
        if index > expected:
            self._add(
                expected,
                Problem("feuille_manquante", f"feuilles {expected} à {index - 1} manquantes", leaf_index=expected),
            )
        self.report.leaves += 1
        if content is None:
            if index < self.purged_end:
                self.report.purged += 1
            else:
                self._add(
                    index,
                    Problem("evenement_supprime", f"feuille {index} : événement supprimé hors purge", leaf_index=index),
                )
        else:
            self.report.events += 1
            seq = content.get("seq")
            if merkle.leaf_hash(leaf_bytes(content)) != stored or (
                not chained
                and event_hash is not None
                and event_hash != stored.hex()
                and not event_hash.startswith("pending-")
            ):
                self._add(
                    index,
                    Problem(
                        "contenu_modifie",
                        f"feuille {index} (séquence {seq}) : contenu modifié",
                        leaf_index=index,
                        seq=seq,
                    ),
                )
            digest = replay_key(content)
            if digest in self.seen:
                self._add(
                    index,
                    Problem(
                        "segment_rejoue",
                        f"feuille {index} (séquence {seq}) : copie d'un événement antérieur",
                        leaf_index=index,
                        seq=seq,
                    ),
                )
            elif self.last_seq is not None and isinstance(seq, int) and seq <= self.last_seq:
                self._add(
                    index,
                    Problem(
                        "ordre_modifie",
                        f"feuille {index} : séquence {seq} après {self.last_seq} (feuilles réordonnées)",
                        leaf_index=index,
                        seq=seq,
                    ),
                )
            self.seen.add(digest)
            if isinstance(seq, int):
                self.last_seq = max(seq, self.last_seq or seq)
            if content.get("operation") == TRIGGER_OPERATION and content.get("channel") == TRIGGER_CHANNEL:
                self._attempt(index, content)
        self.builder.append(stored)
        if self.builder.size in self.wanted:
            self.roots[self.builder.size] = self.builder.root()

    def _attempt(self, index: int, content: Mapping[str, Any]) -> None:
        self.report.attempts += 1
        if len(self.report.attempt_list) < _MAX_ATTEMPTS:
            self.report.attempt_list.append(
                {
                    "leafIndex": index,
                    "seq": content.get("seq"),
                    "occurredAt": content.get("occurred_at"),
                    "reason": content.get("reason"),
                }
            )

    def finish(self) -> VerifyReport:
        size = self.builder.size
        good = 0
        last_size = 0
        for checkpoint in self.checkpoints:
            where = f"point de contrôle n° {checkpoint.id} ({checkpoint.tree_size} feuilles)"
            if self.keys is not None:
                if checkpoint.key_id not in self.keys:
                    self._add(
                        checkpoint.tree_size,
                        Problem(
                            "cle_inconnue",
                            f"{where} signé par une autre clé ({checkpoint.key_id})",
                            checkpoint_id=checkpoint.id,
                        ),
                    )
                elif not self._signed(checkpoint.key_id, checkpoint.signature, checkpoint.note()):
                    self._add(
                        checkpoint.tree_size,
                        Problem("signature_invalide", f"{where} : signature invalide", checkpoint_id=checkpoint.id),
                    )
            if checkpoint.tree_size > size:
                self._add(
                    size,
                    Problem(
                        "journal_tronque",
                        f"{where} : le journal n'a plus que {size} feuilles "
                        f"(fin tronquée à partir de la feuille {size})",
                        leaf_index=size,
                        checkpoint_id=checkpoint.id,
                    ),
                )
                continue
            if self.roots.get(checkpoint.tree_size, b"").hex() != checkpoint.root_hash:
                self._add(
                    checkpoint.tree_size,
                    Problem(
                        "point_de_controle_divergent",
                        f"{where} : racine différente de l'arbre recalculé ; divergence entre les feuilles "
                        f"{good} et {checkpoint.tree_size - 1}",
                        leaf_index=good,
                        checkpoint_id=checkpoint.id,
                    ),
                )
            elif checkpoint.tree_size < last_size:
                self._add(
                    checkpoint.tree_size,
                    Problem(
                        "point_de_controle_divergent",
                        f"{where} : taille inférieure au précédent",
                        checkpoint_id=checkpoint.id,
                    ),
                )
            else:
                good = max(good, checkpoint.tree_size)
            last_size = max(last_size, checkpoint.tree_size)
        self.located.sort(key=lambda item: item[:3])
        self.report.problems = [item[3] for item in self.located]
        return self.report


def _purge_note(purge: _Purge) -> str:
    return purge_note(purge.leaf_end, purge.cutoff, purge.purged_at, purge.checkpoint_id)


# Database ------------------------------------------------------------------------------------

_events: Table = AuditEvent.__table__  # type: ignore[attr-defined]
_leaves: Table = AuditLeaf.__table__  # type: ignore[attr-defined]


def _db_checkpoints(session: Session) -> list[_Checkpoint]:
    rows = session.exec(select_all(AuditCheckpoint)).all()
    return [_Checkpoint(r.id, r.tree_size, r.root_hash, r.issued_at, r.key_id, r.signature) for r in rows]


def _db_purges(session: Session) -> list[_Purge]:
    rows = session.exec(select_all(AuditPurge)).all()
    return [
        _Purge(r.id, r.leaf_end, r.cutoff, r.purged_at, r.checkpoint_id, r.events_deleted, r.key_id, r.signature)
        for r in rows
    ]


def _reference_leaves(session: Session, checker: _Checker, progress: Progress | None) -> None:
    """Every leaf through the reference checker, in one ordered stream."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    total = int(session.scalar(select(func.count()).select_from(_leaves)) or 0) if progress else 0
    # Per statement: ``Connection.execution_options`` would change the session's connection in
    # place, and a later INSERT in the same session would go through a server-side cursor.
    result = session.connection().execute(verify_scan.leaf_query(sqlite), execution_options={"yield_per": 20_000})
    # Rows by position, into plain dicts: this loop runs a million times.
    fields = CONTENT_FIELDS
    leaf = checker.leaf
    done = 0
    for leaf_index, leaf_hash, event_row, event_hash, prev_hash, *values in result:
        content: dict[str, Any] | None = None
        if event_row is not None:
            content = dict(zip(fields, values, strict=True))
            occurred_at = content["occurred_at"]
            content["occurred_at"] = (
                verify_scan.sqlite_time(occurred_at) if isinstance(occurred_at, str) else timestamp_text(occurred_at)
            )
        leaf(leaf_index, bytes.fromhex(leaf_hash), content, event_hash=event_hash, chained=prev_hash != UNCHAINED)
        done += 1
        if progress is not None and not done % verify_scan.CHUNK:
            progress(done, total)
    if progress is not None:
        progress(done, max(done, total))


def verify_database(
    session: Session,
    public_keys: Iterable[Ed25519PublicKey] | None = None,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    reference: bool = False,
) -> VerifyReport:
    """Recompute the whole tree from the database and check it (``public_keys=None``: no signatures).

    The leaves are first scanned by ``audit.verify_scan`` (in ``workers`` processes; None:
    as many as the machine has cores, for a large journal); when that scan has any doubt, or
    with ``reference=True``, the reference checker walks them one by one and locates every
    finding. ``progress(leaves_done, leaves_total)`` is called as the leaves are checked.
    """
    report = VerifyReport()
    checker = _Checker(_keys_by_id(public_keys), _db_checkpoints(session), _db_purges(session), report)
    outcome = None
    if not reference and not checker.located:
        outcome = verify_scan.scan(
            session, purged_end=checker.purged_end, sizes=checker.wanted, workers=workers, progress=progress
        )
    if outcome is not None:
        report.leaves, report.events, report.purged = outcome.leaves, outcome.events, outcome.purged
        report.attempts, report.attempt_list = outcome.attempts, outcome.attempt_list
        checker.builder = outcome.builder
        checker.roots.update(outcome.roots)
    else:
        _reference_leaves(session, checker, progress)
    head = session.get(AuditTreeHead, 1)
    size = checker.builder.size
    if head is not None:
        root = checker.builder.root().hex()
        if head.tree_size != size or head.root_hash != root:
            checker._add(
                min(head.tree_size, size),
                Problem(
                    "tete_incoherente",
                    f"tête de l'arbre : {head.tree_size} feuilles annoncées, {size} présentes"
                    + ("" if head.tree_size != size else " (racine différente)"),
                    leaf_index=min(head.tree_size, size),
                ),
                rank=1,
            )
        last_seq = head.last_seq
        report.pending = int(session.scalar(select(func.count()).where(_events.c.seq > last_seq)) or 0)
        total = int(session.scalar(select(func.count()).select_from(_events)) or 0)
        if total != report.events + report.pending:
            orphan = session.scalar(
                select(func.min(_events.c.seq))
                .where(_events.c.seq <= last_seq)
                .where(~select(_leaves.c.event_id).where(_leaves.c.event_id == _events.c.id).exists())
            )
            if orphan is not None:
                checker._add(
                    size,
                    Problem("evenement_hors_arbre", f"événement de séquence {orphan} absent de l'arbre", seq=orphan),
                )
    return checker.finish()


# Export files --------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def verify_export(lines: Iterable[str], public_keys: Iterable[Ed25519PublicKey] | None) -> VerifyReport:
    """Check an export file on its own, against the public key(s)."""
    keys = _keys_by_id(public_keys)
    report = VerifyReport()
    records = (json.loads(line) for line in lines if line.strip())
    try:
        header = next(records)
    except (StopIteration, json.JSONDecodeError):
        report.problems.append(Problem("format_invalide", "fichier vide ou illisible"))
        return report
    if header.get("type") != EXPORT_TYPE or header.get("version") != EXPORT_VERSION:
        report.problems.append(Problem("format_invalide", "en-tête d'export Relais absent ou d'une autre version"))
        return report
    checkpoints: list[_Checkpoint] = []
    purges: list[_Purge] = []
    pending: list[dict[str, Any]] = []
    for record in records:
        kind = record.get("type")
        if kind == "checkpoint":
            checkpoints.append(
                _Checkpoint(
                    record["id"],
                    record["treeSize"],
                    record["rootHash"],
                    _parse_time(record["issuedAt"]),
                    record["keyId"],
                    record["signature"],
                )
            )
        elif kind == "purge":
            purges.append(
                _Purge(
                    record["id"],
                    record["leafEnd"],
                    _parse_time(record["cutoff"]),
                    _parse_time(record["purgedAt"]),
                    record["checkpointId"],
                    record["eventsDeleted"],
                    record["keyId"],
                    record["signature"],
                )
            )
        elif kind in ("event", "leaf"):
            pending.append(record)
            break
        else:
            report.problems.append(Problem("format_invalide", f"enregistrement de type inconnu : {kind!r}"))
            return report
    leaf_records = _chain(pending, records)
    if header.get("full"):
        checker = _Checker(keys, checkpoints, purges, report)
        for record in leaf_records:
            content = record.get("event") if record.get("type") == "event" else None
            checker.leaf(int(record["leafIndex"]), bytes.fromhex(record["leafHash"]), content)
        return checker.finish()
    return _verify_selective(header, checkpoints, leaf_records, keys, report)


def _chain(first: list[dict[str, Any]], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from first
    yield from rest


def _verify_selective(
    header: Mapping[str, Any],
    checkpoints: list[_Checkpoint],
    records: Iterable[dict[str, Any]],
    keys: dict[str, Ed25519PublicKey] | None,
    report: VerifyReport,
) -> VerifyReport:
    report.checkpoints = len(checkpoints)
    report.signatures_checked = keys is not None
    anchor = next((c for c in checkpoints if c.id == header.get("checkpointId")), None)
    if anchor is not None and keys is not None:
        key = keys.get(anchor.key_id)
        if key is None:
            report.problems.append(
                Problem(
                    "cle_inconnue", f"point de contrôle n° {anchor.id} signé par une autre clé", checkpoint_id=anchor.id
                )
            )
        elif not signature_valid(key, anchor.note(), anchor.signature):
            report.problems.append(
                Problem(
                    "signature_invalide",
                    f"point de contrôle n° {anchor.id} : signature invalide",
                    checkpoint_id=anchor.id,
                )
            )
    last_index = -1
    seen: set[int] = set()
    for record in records:
        content = record.get("event") or {}
        index = record.get("leafIndex")
        stored = bytes.fromhex(record["leafHash"])
        report.leaves += 1
        report.events += 1
        seq = content.get("seq")
        if merkle.leaf_hash(leaf_bytes(content)) != stored:
            report.problems.append(
                Problem(
                    "contenu_modifie", f"feuille {index} (séquence {seq}) : contenu modifié", leaf_index=index, seq=seq
                )
            )
            continue
        digest = replay_key(content)
        if digest in seen or (index is not None and index <= last_index):
            kind = "segment_rejoue" if digest in seen or index == last_index else "ordre_modifie"
            report.problems.append(
                Problem(kind, f"feuille {index} (séquence {seq}) : hors d'ordre ou répétée", leaf_index=index, seq=seq)
            )
            continue
        seen.add(digest)
        if index is None or record.get("proof") is None or anchor is None:
            report.pending += 1
            continue
        last_index = index
        proof = [bytes.fromhex(node) for node in record["proof"]]
        if not merkle.verify_inclusion(stored, index, anchor.tree_size, proof, bytes.fromhex(anchor.root_hash)):
            report.problems.append(
                Problem(
                    "preuve_invalide",
                    f"feuille {index} (séquence {seq}) : preuve d'inclusion invalide",
                    leaf_index=index,
                    seq=seq,
                )
            )
    return report
