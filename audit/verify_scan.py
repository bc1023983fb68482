"""The fast path of ``verify_database``: scan the leaves in aligned ranges, on several cores.

The reference checker (``audit.verify._Checker``) walks every leaf in one Python loop and
reports every finding with its location; over ten million events that is minutes. This scan
makes the same per-leaf checks — consecutive leaf indices from 0, each leaf hash recomputed
from its event's content, the append-time hash, ``seq`` strictly increasing, no replayed
copy, no missing payload above the signed purges — over ranges of ``CHUNK`` leaves that
worker processes read and hash in parallel, and batch by batch rather than row by row.

It only ever concludes "every leaf is sound": each range returns its counts, its refused
modification attempts, its replay fingerprints and its Merkle frontier (plus the frontiers at
the checkpoint sizes it contains), and the parent stitches them together. At the first doubt
(any finding, in any range, or across two ranges) it returns ``None`` and the caller runs the
reference checker from the start, so a tampered journal gets exactly the reference report —
same findings, same locations — only not faster. The checks that do not depend on the leaf
loop (signatures, checkpoint roots, tree head, events outside the tree) stay in the caller.

A batch of rows (``_STREAM``) takes one of two paths:

- the bulk path, for the common batch: every leaf has its payload, no ``details``, a time in
  the usual spelling. The batch is checked column by column (leaf indices, ``seq`` order,
  hash spelling, times) with C-level operations, and the canonical JSON of all its rows is
  built with one ``join``: a column of strings that need no JSON escape goes in as it is
  (one ``encode_basestring`` call over the whole column proves it), other columns through
  the C encoder; Python runs per row only the hashing comprehensions (SHA-256, BLAKE2b);
- the row path (``_RangeScan._rows``), for anything else (purged payloads, ``details``, an
  unusual value): row by row, as the reference reads each field.

Both give byte for byte ``journal.leaf_bytes`` (tests/audit/test_verify_speed.py), and the
bulk path leaves to the row path any batch it cannot take whole, so a value it was not built
for is read the reference's way. The database does only what cannot change a verdict:
PostgreSQL spells the time in SQLite's stored form (``_PG_TIME``), and SQL NULLs out an event
hash equal to its leaf's and a JSON ``null`` in ``details``; the values hashed are the ones read.

Replay fingerprints are stable (BLAKE2b of the JSON of ``journal.replay_key``'s fields), not
Python's ``hash``: worker processes are fresh interpreters (``_WORKER_CODE``), each with its
own string hash seed, and may be started from any process, even one running other threads
(the web console, a test run), where forking is unsafe. A fingerprint equal by chance only
makes the scan hand over to the reference; it never hides a copy, as equal fields always give
equal fingerprints.

Ranges start at multiples of ``CHUNK`` (a power of two), so a range's frontier is made of
perfect subtrees aligned in the whole tree and appends onto the tree of the ranges before it
(``merkle.TreeBuilder.append_subtree``). Each worker opens its own connection from the
database URL and reads its ranges with a server-side cursor (PostgreSQL).

Over 600 lines: the bulk path, the row path it falls back on and the parent that stitches
their results share the row layout and its invariants; split, they would be read apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from array import array
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import itemgetter, lt
from typing import Any

from sqlalchemy import Select, Table, create_engine, func, literal_column, select
from sqlalchemy.engine import Connection
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
    timestamp_text,
)
from audit.models import AuditEvent, AuditLeaf
from relais.core.db import normalize_database_url

# Leaves per range: a power of two (alignment), large enough that a range's setup is noise.
CHUNK = 1 << 16
# Below this many leaves, starting worker processes costs more than they save.
PARALLEL_FROM = 4 * CHUNK
# Refused modification attempts kept per range (the report lists at most this many anyway).
MAX_ATTEMPTS = 50
# Rows fetched and checked at once (2,048 measured best: the batch text stays in cache).
_STREAM = 2048

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
_quote = encode_basestring
_encode_list = c_make_encoder(None, None, encode_basestring, None, ":", "\x00", False, False, True)
_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in _SORTED_KEYS) + "}"
# replay_key's fields, in its order.
_REPLAY_NAMES = (
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
_DETAILS = CONTENT_FIELDS.index("details")
_TIME = CONTENT_FIELDS.index("occurred_at")
_REPLAY_FIELDS = itemgetter(*[CONTENT_FIELDS.index(name) for name in _REPLAY_NAMES])
_DETAILS_IN_REPLAY = _REPLAY_NAMES.index("details")
_sha256 = hashlib.sha256
_blake2b = hashlib.blake2b
_SORTER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)

# The scan's rows: leaf_index, the content in sorted key order — the time as SQLite stores it
# or as PostgreSQL spells it in the same form (``_PG_TIME``), ``details`` NULL when it is SQL
# or JSON null — then leaf_hash, the event's hash (``_EVENT_HASH``), prev_hash, event row id.
_CONTENT = tuple(name for name in _SORTED_KEYS if name != "v")
_PIECES = len(_CONTENT)
_AT = {name: 1 + index for index, name in enumerate(_CONTENT)}
_L_HASH, _E_HASH, _PREV, _EVENT = range(1 + _PIECES, 5 + _PIECES)
_WIDTH = 5 + _PIECES
_C_SEQ, _C_DETAILS, _C_TIME = _AT["seq"], _AT["details"], _AT["occurred_at"]
_C_OPERATION, _C_CHANNEL, _C_REASON = _AT["operation"], _AT["channel"], _AT["reason"]
# Row (sorted) -> CONTENT_FIELDS order, for the row path.
_TO_CONTENT_ORDER = itemgetter(*[_AT[name] for name in CONTENT_FIELDS])
_COLUMN = {index: itemgetter(index) for index in range(_WIDTH)}


# The bulk path builds the text of a whole batch with one join: per row, \x01 \x00 <canonical
# JSON> \x01 [<replay_key's fields' JSON, NUL-separated>]. A column whose strings need no JSON
# escape goes in as it is, between quotes the constants carry; NULL-only columns are constant
# "null". No value in that text holds \x00 or \x01 (JSON escapes control characters, and a
# column that would need it is encoded), so they split rows and parts safely.
_KEYS = [("," if index else "\x01\x00{") + f'"{name}":' for index, name in enumerate(_CONTENT)]
_REPLAY_KEYS = [f',"v":{CONTENT_VERSION}}}\x01[' if index == 0 else "\x00" for index in range(len(_REPLAY_NAMES))]


class _Text:
    """A row's text as constants and slots; ``fill`` repeats it over the batch."""

    def __init__(self) -> None:
        self.template: list[str | None] = []
        self.slots: list[tuple[int, Sequence[str]]] = []
        self.pending = ""

    def constant(self, text: str) -> None:
        self.pending += text

    def slot(self, values: Sequence[str], opening: str = "", closing: str = "") -> None:
        self.template.append(self.pending + opening)
        self.slots.append((len(self.template), values))
        self.template.append(None)
        self.pending = closing

    def fill(self, count: int) -> str:
        template = [*self.template, self.pending]
        period = len(template)
        text = template * count
        for position, values in self.slots:
            text[position::period] = values
        return "".join(text)  # type: ignore[arg-type]


# PostgreSQL spells a time as SQLite stores it, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, instead
# of handing datetimes to parse and format; a year outside 1000-9999 stays NULL (the scan then
# hands over to the reference).
_PG_TIME = (
    "CASE WHEN audit_event.occurred_at >= TIMESTAMPTZ '1000-01-01 00:00:00+00'"
    " AND audit_event.occurred_at < TIMESTAMPTZ '10000-01-01 00:00:00+00'"
    " THEN to_char(audit_event.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') END"
)
# The event's own hash, NULL when it is NULL or the leaf's hash as stored (the common case).
_EVENT_HASH = "CASE WHEN audit_event.hash = audit_leaf.leaf_hash THEN NULL ELSE audit_event.hash END"
_SQLITE_DETAILS = "CASE WHEN audit_event.details = 'null' THEN NULL ELSE audit_event.details END"
_PG_DETAILS = "CASE WHEN audit_event.details::text = 'null' THEN NULL ELSE audit_event.details END"

Progress = Callable[[int, int], None]


def sqlite_time(stored: str) -> str:
    """SQLite keeps the time as text, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC: read it as such."""
    if len(stored) == 26 and stored[10] == " ":
        return f"{stored[:10]}T{stored[11:]}+00:00"
    # Any other spelling: let the datetime parser decide (an edited row will not match anyway).
    return timestamp_text(datetime.fromisoformat(stored))


def leaf_query(sqlite: bool, start: int | None = None, end: int | None = None) -> Select[Any]:
    """Leaves in order, each with its event's content columns (outer join: purged payloads).

    The reference checker's query: content in CONTENT_FIELDS order, values as stored.
    """
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


def scan_query(sqlite: bool, start: int, end: int) -> Select[Any]:
    """The scan's query for leaves [start, end): see ``_CONTENT`` for the row layout."""
    columns: list[Any] = []
    for name in _CONTENT:
        if name == "occurred_at":
            columns.append(literal_column("audit_event.occurred_at" if sqlite else _PG_TIME))
        elif name == "details":
            columns.append(literal_column(_SQLITE_DETAILS if sqlite else _PG_DETAILS))
        else:
            columns.append(_events.c[name])
    return (
        select(
            _leaves.c.leaf_index,
            *columns,
            _leaves.c.leaf_hash,
            literal_column(_EVENT_HASH),
            _events.c.prev_hash,
            _events.c.id,
        )
        .select_from(_leaves.outerjoin(_events, _events.c.id == _leaves.c.event_id))
        .where(_leaves.c.leaf_index >= start, _leaves.c.leaf_index < end)
        .order_by(_leaves.c.leaf_index)
    )


def canonical_bytes(values: list[Any]) -> bytes:
    """``journal.leaf_bytes`` of a row's content values (CONTENT_FIELDS order, time as text).

    Without ``details``, the values are encoded as one JSON list by the C encoder, with NUL
    (which JSON always escapes, so never appears inside a value) between items, and slotted
    into a template of the sorted keys: the same bytes as encoding the dict, for a fraction
    of the time. Rows with ``details`` (whose nested keys must be sorted) take ``leaf_bytes``.
    """
    if values[_DETAILS] is None:
        encoded = "".join(_encode_list(_IN_KEY_ORDER([*values, CONTENT_VERSION]), 0))
        return (_TEMPLATE % tuple(encoded[1:-1].split("\x00"))).encode()
    return leaf_bytes(dict(zip(CONTENT_FIELDS, values, strict=True)))


def replay_fingerprint(values: Sequence[Any]) -> bytes:
    """8 bytes standing for ``journal.replay_key`` of a row's content (CONTENT_FIELDS order).

    BLAKE2b of the JSON list of the key's fields (``details`` as its key-sorted JSON, as in
    replay_key): equal fields give equal fingerprints in every process. The bulk path
    hashes the same text, built from the same JSON pieces.
    """
    fields = list(_REPLAY_FIELDS(values))
    details = fields[_DETAILS_IN_REPLAY]
    if details is not None:
        fields[_DETAILS_IN_REPLAY] = _SORTER.encode(details)
    return _blake2b("".join(_encode_list(fields, 0)).encode(), digest_size=8).digest()


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


class _Doubt(Exception):
    """Something the reference checker must look at."""


def _column_slot(column: Sequence[Any], count: int) -> tuple[Sequence[str], str, str] | str | None:
    """A column's values as the bulk text takes them: (values, opening, closing) text around
    each, or a constant for every row; None when a value is not a JSON scalar."""
    try:
        joined = "".join(column)
    except TypeError:
        if column.count(None) == count:
            return "null"
        if set(map(type, column)) == {int}:
            return list(map(int.__repr__, column)), "", ""
    else:
        if _quote(joined) == f'"{joined}"':
            return column, '"', '"'  # nothing to escape: the strings as they are, quoted
    try:
        pieces = "".join(_encode_list(list(column), 0))[1:-1].split("\x00")
    except (TypeError, ValueError):
        return None  # a value JSON cannot hold: the row path reads it
    if len(pieces) != count:
        return None  # not scalars: a nested list's items are NUL-separated too
    return pieces, "", ""


class _RangeScan:
    """The state of one range's scan, fed batch by batch."""

    def __init__(self, start: int, end: int, purged_end: int, sqlite: bool) -> None:
        self.result = RangeResult(start, end)
        self.expected = start
        self.purged_end = purged_end
        self.sqlite = sqlite
        self.last_seq: int | None = None
        self.hashes: list[bytes] = []
        self.fingerprints: list[bytes] = []

    def batch(self, rows: Sequence[Sequence[Any]]) -> None:
        if not self._bulk(rows):
            self._rows(rows)

    def _bulk(self, rows: Sequence[Sequence[Any]]) -> bool:
        """The whole batch at once; False (nothing changed) when the row path must take it."""
        count = len(rows)
        expected = self.expected
        if list(map(_COLUMN[0], rows)) != list(range(expected, expected + count)):
            return False
        seqs = list(map(_COLUMN[_C_SEQ], rows))
        # An int seq in every row: every leaf has its event (a purged one has none).
        if set(map(type, seqs)) != {int} or not all(map(lt, seqs, seqs[1:])):
            return False
        if self.last_seq is not None and seqs[0] <= self.last_seq:
            return False
        if list(map(_COLUMN[_C_DETAILS], rows)).count(None) != count:
            return False
        # Each time in the usual spelling, 26 characters with one space at 10 and nothing
        # JSON escapes: ``sqlite_time`` is then the space made a "T", plus "+00:00".
        times = list(map(_COLUMN[_C_TIME], rows))
        if set(map(type, times)) != {str} or set(map(len, times)) != {26}:
            return False
        joined = "".join(times)
        if joined.count(" ") != count or joined[10::26].count(" ") != count or _quote(joined) != f'"{joined}"':
            return False
        stored = list(map(_COLUMN[_L_HASH], rows))
        if set(map(type, stored)) != {str} or set(map(len, stored)) != {64}:
            return False
        spelt = "\x00".join(times).replace(" ", "T").split("\x00")
        columns = list(zip(*rows, strict=True))
        slots: dict[str, tuple[Sequence[str], str, str] | str] = {"occurred_at": (spelt, '"', '+00:00"')}
        for name in _CONTENT:
            if name != "occurred_at":
                slot = _column_slot(columns[_AT[name]], count)
                if slot is None:
                    return False
                slots[name] = slot
        text = _Text()
        for keys, names in ((_KEYS, _CONTENT), (_REPLAY_KEYS, _REPLAY_NAMES)):
            for key, name in zip(keys, names, strict=True):
                text.constant(key)
                slot = slots[name]
                if isinstance(slot, str):
                    text.constant(slot)
                else:
                    text.slot(*slot)
        text.constant("]")
        parts = text.fill(count).encode().split(b"\x01")
        digests = [_sha256(part).digest() for part in parts[1::2]]
        if b"".join(digests).hex() != "".join(stored):
            return False
        # The event's own hash: NULL, or the leaf's (lowercase, checked above), or another.
        event_hashes = list(map(_COLUMN[_E_HASH], rows))
        if event_hashes.count(None) != count:
            for event_hash, prev_hash in zip(event_hashes, map(_COLUMN[_PREV], rows), strict=True):
                if prev_hash == UNCHAINED and event_hash is not None:
                    if not isinstance(event_hash, str) or not event_hash.startswith("pending-"):
                        return False
        # Checked: take the batch.
        result = self.result
        self.fingerprints.extend([_blake2b(part, digest_size=8).digest() for part in parts[2::2]])
        self.hashes.extend(digests)
        if result.first_seq is None:
            result.first_seq = seqs[0]
        self.last_seq = seqs[-1]
        self.expected = expected + count
        result.events += count
        if TRIGGER_OPERATION in map(_COLUMN[_C_OPERATION], rows):
            for row, time in zip(rows, spelt, strict=True):
                self._attempt(row, f"{time}+00:00")
        return True

    def _attempt(self, row: Sequence[Any], occurred_at: str) -> None:
        if row[_C_OPERATION] == TRIGGER_OPERATION and row[_C_CHANNEL] == TRIGGER_CHANNEL:
            result = self.result
            result.attempts += 1
            if len(result.attempt_list) < MAX_ATTEMPTS:
                result.attempt_list.append(
                    {"leafIndex": row[0], "seq": row[_C_SEQ], "occurredAt": occurred_at, "reason": row[_C_REASON]}
                )

    def _rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Row by row, each value read the way the reference checker reads it."""
        result = self.result
        for row in rows:
            leaf_index, leaf_hash, event_row = row[0], row[_L_HASH], row[_EVENT]
            if leaf_index != self.expected:
                raise _Doubt
            self.expected += 1
            stored = bytes.fromhex(leaf_hash)
            self.hashes.append(stored)
            if event_row is None:
                if leaf_index >= self.purged_end:
                    raise _Doubt
                result.purged += 1
                continue
            values = list(_TO_CONTENT_ORDER(row))
            stored_time = row[_C_TIME]
            if isinstance(stored_time, str):
                occurred_at = sqlite_time(stored_time)
            elif self.sqlite:
                occurred_at = timestamp_text(stored_time)  # as the reference: a non-text value raises
            else:
                raise _Doubt  # a time PostgreSQL could not spell: the reference reads it
            values[_TIME] = occurred_at
            details = values[_DETAILS]
            if self.sqlite and details is not None:
                values[_DETAILS] = json.loads(details)
            if _sha256(b"\x00" + canonical_bytes(values)).digest() != stored:
                raise _Doubt
            # The event's own hash; None: NULL or the leaf's hash as stored, maybe not in lowercase.
            event_hash = row[_E_HASH]
            if row[_PREV] == UNCHAINED:
                if event_hash is None:
                    if leaf_hash != stored.hex():
                        raise _Doubt
                elif event_hash != stored.hex() and not event_hash.startswith("pending-"):
                    raise _Doubt
            seq = row[_C_SEQ]
            if not isinstance(seq, int) or (self.last_seq is not None and seq <= self.last_seq):
                raise _Doubt
            if result.first_seq is None:
                result.first_seq = seq
            self.last_seq = seq
            self.fingerprints.append(replay_fingerprint(values))
            result.events += 1
            self._attempt(row, occurred_at)

    def finish(self, sizes: Sequence[int]) -> RangeResult:
        result = self.result
        if self.expected != result.end:
            raise _Doubt
        result.last_seq = self.last_seq
        result.fingerprints = b"".join(self.fingerprints)
        start, hashes = result.start, self.hashes
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


def scan_batches(
    batches: Iterable[Sequence[Sequence[Any]]],
    start: int,
    end: int,
    purged_end: int,
    sizes: Sequence[int],
    sqlite: bool,
) -> RangeResult:
    """Check the leaves [start, end) (rows of ``scan_query``); stop at the first doubt."""
    scan = _RangeScan(start, end, purged_end, sqlite)
    try:
        for rows in batches:
            scan.batch(rows)
        return scan.finish(sizes)
    except _Doubt:
        return RangeResult(start, end, sound=False)


def _stream(connection: Any, sqlite: bool, statement: str, name: str) -> Generator[list[Any]]:
    """The rows as the driver's tuples, a batch at a time: SQLAlchemy's Row per leaf costs as
    much as the check. PostgreSQL: a named (server-side) cursor, rows arrive as they are read."""
    cursor = connection.cursor() if sqlite else connection.cursor(name=name)
    try:
        cursor.execute(statement)
        while rows := cursor.fetchmany(_STREAM):
            yield rows
    finally:
        cursor.close()


def _statement(dialect: Any, sqlite: bool, start: int, end: int) -> str:
    return str(scan_query(sqlite, start, end).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _scan_range(
    connection: Connection, sqlite: bool, start: int, end: int, purged_end: int, sizes: Sequence[int]
) -> RangeResult:
    statement = _statement(connection.dialect, sqlite, start, end)
    raw: Any = connection.connection.dbapi_connection
    batches = _stream(raw, sqlite, statement, f"relais_verify_{start}")
    try:
        return scan_batches(batches, start, end, purged_end, sizes, sqlite)
    finally:
        batches.close()  # a doubt stops reading: close the cursor now, not when collected


# Worker processes -----------------------------------------------------------------------------

# A worker is a fresh interpreter that imports this module only: not forked (unsafe from a
# process running other threads), and not ``multiprocessing``'s spawn, which imports the
# parent's main module again in every worker (for the CLI, every command: seconds each).
_WORKER_CODE = (
    "import pickle, sys; sys.path[:0] = pickle.load(sys.stdin.buffer); "
    "from audit.verify_scan import _worker_main; _worker_main()"
)
_Task = tuple[bool, int, int, int, list[int]]


def _worker_main() -> None:
    """Read the database URL and this worker's ranges on stdin; write each range's result on
    stdout as it is done (pickled), stopping after the first doubt."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed goes to stderr, not into the results
    url, tasks = pickle.load(sys.stdin.buffer)  # noqa: S301 (from the parent, over a pipe)
    # A plain reader, not ``create_db_engine``: on SQLite that one begins every transaction
    # IMMEDIATE (a write lock), and the parent already holds its verification session open.
    engine = create_engine(normalize_database_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        for task in tasks:
            result = _scan_range(connection, *task)
            pickle.dump(result, results, protocol=pickle.HIGHEST_PROTOCOL)
            results.flush()
            if not result.sound:
                break
    results.close()


def _scan_in_workers(url: str, tasks: list[_Task], count: int, stitch: _Stitcher) -> bool:
    """Ranges dealt round-robin to ``count`` workers, their results stitched in leaf order;
    False at the first doubt (every worker is then stopped)."""
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(count):
            worker = subprocess.Popen(  # noqa: S603 (this interpreter, a constant program)
                [sys.executable, "-c", _WORKER_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            workers.append(worker)
            assert worker.stdin is not None
            # On stdin, not the command line: the URL may hold the database password.
            pickle.dump(sys.path, worker.stdin)
            pickle.dump((url, tasks[index::count]), worker.stdin)
            worker.stdin.close()
        for index in range(len(tasks)):
            worker = workers[index % count]
            assert worker.stdout is not None
            try:
                result = pickle.load(worker.stdout)  # noqa: S301 (our own worker, over a pipe)
            except EOFError:
                raise RuntimeError(f"processus de vérification arrêté (code {worker.wait()})") from None
            if not stitch.add(result):
                return False
        return True
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


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
    if url is None:
        return 1  # an in-memory SQLite database lives in this process only
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
    if not _scan_in_workers(url, tasks, min(count_workers, len(tasks)), stitch):
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
