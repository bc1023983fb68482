"""The proof-carrying export of the journal, record by record (JSON Lines, one record a line).

Format, version ``EXPORT_VERSION``; ``audit.verify.verify_export`` checks a file of it offline::

    {"type": "relais-audit-export", "version": 1, "origin": ..., "full": bool, "checkpointId": ...}
    {"type": "checkpoint", "id", "treeSize", "rootHash", "issuedAt", "keyId", "signature", "note"}
    {"type": "purge", "id", "leafEnd", "cutoff", "purgedAt", "checkpointId", "keyId", "signature"}
    {"type": "event", "id", "leafIndex", "leafHash", "event": {...}, "proof": [...] | null}
    {"type": "leaf", "leafIndex", "leafHash"}          (a purged payload, full exports only)

A full export carries every leaf, checkpoint and purge, so that the whole tree can be
recomputed from it; a selective export (search results, an incident's evidence) carries the
chosen events, each with its inclusion proof against one signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Table, select
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from audit import merkle
from audit.checkpoints import ORIGIN, ProofTree, checkpoint_json, latest_checkpoint
from audit.journal import CONTENT_FIELDS, event_content, leaf_bytes
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditPurge

EXPORT_TYPE = "relais-audit-export"
EXPORT_VERSION = 1

_events: Table = AuditEvent.__table__  # type: ignore[attr-defined]
_leaves: Table = AuditLeaf.__table__  # type: ignore[attr-defined]


def select_all(model: Any) -> Any:
    """Every row of a checkpoint or purge table, in the order they were written."""
    return sqlmodel_select(model).order_by(col(model.id))


def _purge_json(purge: AuditPurge) -> dict[str, Any]:
    return {
        "id": purge.id,
        "leafEnd": purge.leaf_end,
        "cutoff": purge.cutoff.isoformat(),
        "purgedAt": purge.purged_at.isoformat(),
        "checkpointId": purge.checkpoint_id,
        "eventsDeleted": purge.events_deleted,
        "keyId": purge.key_id,
        "signature": purge.signature,
    }


def export_records(
    session: Session,
    event_ids: Iterable[int] | None = None,
    *,
    checkpoint: AuditCheckpoint | None = None,
) -> Iterator[dict[str, Any]]:
    """The proof-carrying export, record by record (see the module docstring for the format).

    ``event_ids=None`` exports the whole journal (every leaf, checkpoint and purge); otherwise
    the given events, each with its inclusion proof against ``checkpoint`` (default: the latest
    one). An event not yet covered by that checkpoint is exported with ``"proof": null``.
    """
    full = event_ids is None
    checkpoint = checkpoint or latest_checkpoint(session)
    yield {
        "type": EXPORT_TYPE,
        "version": EXPORT_VERSION,
        "origin": ORIGIN,
        "full": full,
        "checkpointId": checkpoint.id if checkpoint else None,
    }
    if full:
        for row in session.exec(select_all(AuditCheckpoint)):
            yield {"type": "checkpoint", **checkpoint_json(row)}
        for purge in session.exec(select_all(AuditPurge)):
            yield {"type": "purge", **_purge_json(purge)}
        content_columns = [_events.c[name] for name in CONTENT_FIELDS]
        query = (
            select(_leaves.c.leaf_index, _leaves.c.leaf_hash, _events.c.id.label("event_row"), *content_columns)
            .select_from(_leaves.outerjoin(_events, _events.c.id == _leaves.c.event_id))
            .order_by(_leaves.c.leaf_index)
        )
        # Per statement: set on the connection, the option would stay on the session's
        # connection and send its later statements (an audit INSERT) through a server cursor.
        for row in session.connection().execute(query, execution_options={"yield_per": 20_000}):
            mapping = row._mapping
            if mapping["event_row"] is None:
                yield {"type": "leaf", "leafIndex": mapping["leaf_index"], "leafHash": mapping["leaf_hash"]}
            else:
                yield {
                    "type": "event",
                    "id": mapping["event_row"],
                    "leafIndex": mapping["leaf_index"],
                    "leafHash": mapping["leaf_hash"],
                    "event": event_content(mapping),
                    "proof": None,
                }
        return
    if checkpoint is not None:
        yield {"type": "checkpoint", **checkpoint_json(checkpoint)}
    tree = ProofTree(session, checkpoint.tree_size) if checkpoint is not None else None
    wanted = list(event_ids or ())
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        query = (
            select(
                _events.c.id.label("event_row"),
                _leaves.c.leaf_index,
                _leaves.c.leaf_hash,
                *[_events.c[n] for n in CONTENT_FIELDS],
            )
            .select_from(_events.outerjoin(_leaves, _leaves.c.event_id == _events.c.id))
            .where(_events.c.id.in_(chunk))
        )
        rows = {row._mapping["event_row"]: row._mapping for row in session.execute(query)}
        ordered = sorted(
            (rows[i] for i in chunk if i in rows),
            key=lambda m: (m["leaf_index"] is None, m["leaf_index"] or 0, m["seq"]),
        )
        for mapping in ordered:
            index = mapping["leaf_index"]
            covered = tree is not None and index is not None and index < tree.tree_size
            yield {
                "type": "event",
                "id": mapping["event_row"],
                "leafIndex": index,
                "leafHash": mapping["leaf_hash"] or merkle.leaf_hash(leaf_bytes(event_content(mapping))).hex(),
                "event": event_content(mapping),
                "proof": tree.path(index) if covered and tree is not None else None,
            }
