"""The fast path of ``verify_database``: scan the leaves in aligned ranges, on several cores.

The reference checker (``audit.verify._Checker``) walks every leaf in one Python loop and
reports every finding with its location; over ten million events that is minutes. This scan
makes the same per-leaf checks — consecutive leaf indices from 0, each leaf hash recomputed
from its event's content, the append-time hash, ``seq`` strictly increasing, no replayed
copy, no missing payload above the signed purges — leaner (no per-row objects beyond one
dict, the canonical JSON built from pre-sorted keys, leaf hashes combined level by level),
over ranges of ``CHUNK`` leaves that worker processes read and hash in parallel.

It only ever concludes "every leaf is sound": each range returns its counts, its refused
modification attempts, its replay fingerprints and its Merkle frontier (plus the frontiers at
the checkpoint sizes it contains), and the parent stitches them together. At the first doubt
(any finding, in any range, or across two ranges) it returns ``None`` and the caller runs the
reference checker from the start, so a tampered journal gets exactly the reference report —
same findings, same locations — only not faster. The checks that do not depend on the leaf
loop (signatures, checkpoint roots, tree head, events outside the tree) stay in the caller.

Ranges start at multiples of ``CHUNK`` (a power of two), so a range's frontier is made of
perfect subtrees aligned in the whole tree and appends onto the tree of the ranges before it
(``merkle.TreeBuilder.append_subtree``). Workers are forked: they share the parent's string
hash seed, so replay fingerprints (``journal.replay_key``, Python's ``hash``) compare across
processes; each worker opens its own connection from the database URL.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import itemgetter
from typing import Any

from sqlalchemy import Select, Table, create_engine, func, literal_column, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from audit import merkle
from audit.journal import (
    CONTENT_FIELDS,
    CONTENT_VERSION,
    TRIGGER_CHANNEL,
    TRIGGER_OPERATION,
    UNCHAINED,
    leaf_bytes,
    replay_key,
    timestamp_text,
)
from audit.models import AuditEvent, AuditLeaf
from relais.core.db import normalize_database_url

# Leaves per range: a power of two (alignment), large enough that a range's setup is noise.
CHUNK = 1 << 16
# Below this many leaves, worker processes cost more than they save.
PARALLEL_FROM = 4 * CHUNK
# Refused modification attempts kept per range (the report lists at most this many anyway).
MAX_ATTEMPTS = 50
_STREAM = 10_000

_events: Table = AuditEvent.__table__  # type: ignore[attr-defined]
_leaves: Table = AuditLeaf.__table__  # type: ignore[attr-defined]

# The canonical JSON of a leaf is its content plus "v", keys sorted (``journal.leaf_bytes``).
# A dict built in that key order and encoded without sorting gives the same bytes, cheaper.
_WITH_VERSION = (*CONTENT_FIELDS, "v")
_SORTED_KEYS = tuple(sorted(_WITH_VERSION))
_IN_KEY_ORDER = itemgetter(*[_WITH_VERSION.index(name) for name in _SORTED_KEYS])
# The C encoder journal.leaf_bytes runs (ensure_ascii=False: encode_basestring), made once;
# arguments: markers, default, encoder, indent, key and item separators, sort_keys, skipkeys,
# allow_nan. A value it cannot encode raises, as leaf_bytes would.
_encode_list = c_make_encoder(None, None, encode_basestring, None, ":", "\x00", False, False, True)
_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in _SORTED_KEYS) + "}"
# replay_key's fields, in its order: for a row without details, hash() of this tuple is it.
_REPLAY_FIELDS = itemgetter(
    *[
        CONTENT_FIELDS.index(name)
        for name in (
            "request_id",
            "occurred_at",
            "operation",
            "reason",
            "decision",
            "client_id",
            "agent_identifiant",
            "usager_id",
            "target",
            "http_status",
            "details",
        )
    ]
)
_OPERATION = CONTENT_FIELDS.index("operation")
_CHANNEL = CONTENT_FIELDS.index("channel")
_REASON = CONTENT_FIELDS.index("reason")
_OCCURRED_AT = CONTENT_FIELDS.index("occurred_at")
_DETAILS = CONTENT_FIELDS.index("details")
_SEQ = CONTENT_FIELDS.index("seq")
# In a row of leaf_query: leaf_index, leaf_hash, event_row, event_hash, prev_hash, then content.
_ROW_DETAILS = 5 + _DETAILS
_sha256 = hashlib.sha256

Progress = Callable[[int, int], None]


def sqlite_time(stored: str) -> str:
    """SQLite keeps the time as text, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC: read it as such."""
    if len(stored) == 26 and stored[10] == " ":
        return f"{stored[:10]}T{stored[11:]}+00:00"
    # Any other spelling: let the datetime parser decide (an edited row will not match anyway).
    return timestamp_text(datetime.fromisoformat(stored))


def leaf_query(sqlite: bool, start: int | None = None, end: int | None = None) -> Select[Any]:
    """Leaves in order, each with its event's content columns (outer join: purged payloads)."""
    content_columns = [
        # Read SQLite's text time as is rather than parse and format millions of datetimes.
        literal_column("audit_event.occurred_at") if sqlite and name == "occurred_at" else _events.c[name]
        for name in CONTENT_FIELDS
    ]
    query = select(
        _leaves.c.leaf_index,
        _leaves.c.leaf_hash,
        _events.c.id.label("event_row"),
        _events.c.hash.label("event_hash"),
        _events.c.prev_hash,
        *content_columns,
    ).select_from(_leaves.outerjoin(_events, _events.c.id == _leaves.c.event_id))
    if start is not None:
        query = query.where(_leaves.c.leaf_index >= start)
    if end is not None:
        query = query.where(_leaves.c.leaf_index < end)
    return query.order_by(_leaves.c.leaf_index)


def canonical_bytes(values: list[Any]) -> bytes:
    """``journal.leaf_bytes`` of a row's content values (CONTENT_FIELDS order, time as text).

    Without ``details`` (the bulk of a journal: partner calls), the values are encoded as one
    JSON list by the C encoder, with NUL (which JSON always escapes, so never appears inside
    a value) between items, and slotted into a template of the sorted keys: the same bytes as
    encoding the dict, for a fraction of the time. Rows with ``details`` (whose nested keys
    must be sorted) take ``leaf_bytes`` itself.
    """
    if values[_DETAILS] is None:
        encoded = "".join(_encode_list(_IN_KEY_ORDER([*values, CONTENT_VERSION]), 0))
        return (_TEMPLATE % tuple(encoded[1:-1].split("\x00"))).encode()
    return leaf_bytes(dict(zip(CONTENT_FIELDS, values, strict=True)))


@dataclass
class RangeResult:
    """What one range of leaves tells the parent; ``sound`` False means "run the reference"."""

    start: int
    end: int
    sound: bool = True
    purged: int = 0
    events: int = 0
    attempts: int = 0
    attempt_list: list[dict[str, Any]] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    fingerprints: bytes = b""
    # Perfect subtrees (height, root) of the range's leaves, and of its prefixes ending at a
    # checkpoint size (absolute size -> frontier).
    frontier: list[tuple[int, bytes]] = field(default_factory=list)
    marks: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)


def scan_rows(
    rows: Iterable[Sequence[Any]], start: int, end: int, purged_end: int, sizes: Sequence[int]
) -> RangeResult:
    """Check the leaves [start, end) as the reference checker does; stop at the first doubt."""
    result = RangeResult(start, end)
    doubt = RangeResult(start, end, sound=False)
    fingerprints = array("q")
    remember = fingerprints.append
    hashes: list[bytes] = []
    keep = hashes.append
    expected = start
    last_seq: int | None = None
    attempt_list = result.attempt_list
    for leaf_index, leaf_hash, event_row, event_hash, prev_hash, *values in rows:
        if leaf_index != expected:
            return doubt
        expected += 1
        stored = bytes.fromhex(leaf_hash)
        keep(stored)
        if event_row is None:
            if leaf_index >= purged_end:
                return doubt
            result.purged += 1
            continue
        occurred_at = values[_OCCURRED_AT]
        values[_OCCURRED_AT] = sqlite_time(occurred_at) if isinstance(occurred_at, str) else timestamp_text(occurred_at)
        if _sha256(b"\x00" + canonical_bytes(values)).digest() != stored:
            return doubt
        if (
            prev_hash == UNCHAINED
            and event_hash is not None
            and event_hash != stored.hex()
            and not event_hash.startswith("pending-")
        ):
            return doubt
        seq = values[_SEQ]
        if not isinstance(seq, int) or (last_seq is not None and seq <= last_seq):
            return doubt
        if last_seq is None:
            result.first_seq = seq
        last_seq = seq
        if values[_DETAILS] is None:
            remember(hash(_REPLAY_FIELDS(values)))
        else:
            remember(replay_key(dict(zip(CONTENT_FIELDS, values, strict=True))))
        result.events += 1
        if values[_OPERATION] == TRIGGER_OPERATION and values[_CHANNEL] == TRIGGER_CHANNEL:
            result.attempts += 1
            if len(attempt_list) < MAX_ATTEMPTS:
                attempt_list.append(
                    {
                        "leafIndex": leaf_index,
                        "seq": seq,
                        "occurredAt": values[_OCCURRED_AT],
                        "reason": values[_REASON],
                    }
                )
    if expected != end:
        return doubt
    result.last_seq = last_seq
    result.fingerprints = fingerprints.tobytes()
    if sizes:
        builder = merkle.TreeBuilder()
        wanted = set(sizes)
        for leaf in hashes:
            builder.append(leaf)
            if start + builder.size in wanted:
                result.marks[start + builder.size] = builder.stack()
        result.frontier = builder.stack()
    else:
        result.frontier = merkle.compact_range(hashes)
    return result


def _stream(connection: Connection, sqlite: bool, start: int, end: int) -> Iterator[Sequence[Any]]:
    """The range's rows as the driver's tuples: SQLAlchemy's Row per leaf costs as much as a check.

    What SQLAlchemy would otherwise do per column is done here: SQLite hands ``details`` back
    as JSON text (``json.loads`` it, as the JSON type does); psycopg already decodes it, and
    times stay datetimes that ``timestamp_text`` normalises to UTC either way.
    """
    statement = leaf_query(sqlite, start, end).compile(
        dialect=connection.dialect, compile_kwargs={"literal_binds": True}
    )
    raw: Any = connection.connection.dbapi_connection
    # PostgreSQL: a named (server-side) cursor, so that rows arrive as they are read.
    cursor = raw.cursor() if sqlite else raw.cursor(name=f"relais_verify_{start}")
    try:
        cursor.execute(str(statement))
        while rows := cursor.fetchmany(_STREAM):
            if sqlite:
                for row in rows:
                    details = row[_ROW_DETAILS]
                    if details is not None:
                        row = (*row[:_ROW_DETAILS], json.loads(details), *row[_ROW_DETAILS + 1 :])
                    yield row
            else:
                yield from rows
    finally:
        cursor.close()


def _scan_range(
    connection: Connection, sqlite: bool, start: int, end: int, purged_end: int, sizes: Sequence[int]
) -> RangeResult:
    return scan_rows(_stream(connection, sqlite, start, end), start, end, purged_end, sizes)


# Worker processes -----------------------------------------------------------------------------

_worker_engine: Engine | None = None


def _start_worker(url: str) -> None:
    global _worker_engine
    # A plain reader, not ``create_db_engine``: on SQLite that one begins every transaction
    # IMMEDIATE (a write lock), and the parent already holds its verification session open.
    _worker_engine = create_engine(normalize_database_url(url), poolclass=NullPool)


def _work(task: tuple[bool, int, int, int, list[int]]) -> RangeResult:
    sqlite, start, end, purged_end, sizes = task
    assert _worker_engine is not None
    with _worker_engine.connect() as connection:
        return _scan_range(connection, sqlite, start, end, purged_end, sizes)


# The parent -------------------------------------------------------------------------------------


@dataclass
class ScanOutcome:
    leaves: int
    events: int
    purged: int
    attempts: int
    attempt_list: list[dict[str, Any]]
    builder: merkle.TreeBuilder
    roots: dict[int, bytes]


def _worker_count(requested: int | None, leaves: int, url: str | None) -> int:
    if url is None or threading.active_count() > 1:
        # Forking a process that runs other threads (the web console's verification runs in
        # a server thread; a test process keeps worker threads) can copy a lock one of them
        # holds, and the forked worker then hangs or dies: workers only from a single-threaded
        # process such as the CLI, even when asked for (a CI run once hung here).
        return 1
    if requested is not None:
        return max(1, requested)
    if leaves < PARALLEL_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _database_url(session: Session) -> str | None:
    """The URL a worker can open again, or None (an in-memory SQLite lives in this process)."""
    url = session.get_bind().engine.url
    if url.get_backend_name() == "sqlite" and (url.database or ":memory:") == ":memory:":
        return None
    return url.render_as_string(hide_password=False)


def scan(
    session: Session,
    *,
    purged_end: int,
    sizes: Iterable[int],
    workers: int | None = None,
    progress: Progress | None = None,
) -> ScanOutcome | None:
    """Scan every leaf; the outcome, or None when anything is in doubt (run the reference)."""
    count, highest = session.execute(select(func.count(), func.max(_leaves.c.leaf_index))).one()
    total = int(count or 0)
    if total and highest != total - 1:
        return None
    sqlite = session.get_bind().dialect.name == "sqlite"
    wanted = sorted({size for size in sizes if 0 < size <= total})
    ranges = [(start, min(total, start + CHUNK)) for start in range(0, total, CHUNK)]
    tasks = [
        (sqlite, start, end, purged_end, [size for size in wanted if start < size <= end]) for start, end in ranges
    ]
    url = _database_url(session)
    count_workers = _worker_count(workers, total, url)
    outcome = ScanOutcome(0, 0, 0, 0, [], merkle.TreeBuilder(), {0: merkle.EMPTY_ROOT})
    stitch = _Stitcher(outcome, total, progress)
    if count_workers == 1 or len(tasks) == 1:
        connection = session.connection()
        for task in tasks:
            if not stitch.add(_scan_range(connection, *task)):
                return None
        return stitch.finish()
    assert url is not None
    # Forked (not spawned) workers share this process's string hash seed: see the docstring.
    context = multiprocessing.get_context("fork")
    with context.Pool(min(count_workers, len(tasks)), initializer=_start_worker, initargs=(url,)) as pool:
        for result in pool.imap(_work, tasks):
            if not stitch.add(result):
                pool.terminate()
                return None
    return stitch.finish()


class _Stitcher:
    """Joins range results in leaf order: counts, cross-range order and replays, the tree."""

    def __init__(self, outcome: ScanOutcome, total: int, progress: Progress | None) -> None:
        self.outcome = outcome
        self.total = total
        self.progress = progress
        self.last_seq: int | None = None
        self.seen: set[int] = set()

    def add(self, result: RangeResult) -> bool:
        if not result.sound:
            return False
        outcome = self.outcome
        if result.first_seq is not None:
            if self.last_seq is not None and result.first_seq <= self.last_seq:
                return False
            self.last_seq = result.last_seq
        fingerprints = array("q")
        fingerprints.frombytes(result.fingerprints)
        before = len(self.seen)
        self.seen.update(fingerprints)
        if len(self.seen) - before != len(fingerprints):
            return False  # a replayed copy, within the range or of an earlier one
        for size, frontier in result.marks.items():
            builder = outcome.builder.copy()
            for height, node in frontier:
                builder.append_subtree(height, node)
            outcome.roots[size] = builder.root()
        for height, node in result.frontier:
            outcome.builder.append_subtree(height, node)
        outcome.leaves += result.end - result.start
        outcome.events += result.events
        outcome.purged += result.purged
        outcome.attempts += result.attempts
        room = MAX_ATTEMPTS - len(outcome.attempt_list)
        outcome.attempt_list.extend(result.attempt_list[: max(0, room)])
        if self.progress is not None:
            self.progress(outcome.leaves, self.total)
        return True

    def finish(self) -> ScanOutcome:
        return self.outcome
