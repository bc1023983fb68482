"""An open-loop (fixed-rate) HTTP/1.1 load generator, for latency at a given load.

wrk and the Python generator of ``run.py`` are closed loops: a connection sends its next request
only once the previous answer is in, so when the server stalls they stop sending and the stall
shows up as one slow request instead of all the requests that should have been sent meanwhile
(coordinated omission). Here request ``i`` is due at ``t0 + i / rate`` whatever happened before,
and its latency is counted from that *scheduled* time: time spent waiting for a free connection
or behind a stalled server is part of it, as it would be for a client arriving at that moment.

The hot path is raw asyncio streams with prepared request bytes and answers read by
Content-Length (no HTTP client library), so that one Python process keeps the schedule at about
a thousand requests per second. ``dispatch_lag`` tells whether it did: how late the generator
itself started each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HttpRequest:
    """One prepared request: what a wrk script sends, and what this generator sends."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        # Latin-1 as on the wire: header values are ASCII here (tokens, agent names, jetons).
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class FixedRateResult:
    rate: float
    seconds: float
    count: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    achieved_rps: float = 0.0
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    # How late the generator itself started requests: near zero, the schedule was kept; large,
    # the client (not the server) added that much to every latency figure.
    dispatch_lag_p99_ms: float = math.nan
    dispatch_lag_max_ms: float = math.nan
    connections: int = 0
    # Latencies of good answers, in seconds from their scheduled time, sorted.
    latencies_s: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """Every figure but the raw latencies (for JSON reports)."""
        return {key: value for key, value in self.__dict__.items() if key != "latencies_s"}


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    # Nearest-rank percentile: always a latency that was actually observed.
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class ProtocolError(Exception):
    """An answer this generator does not read (no Content-Length)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, payload: bytes) -> tuple[int, bytes, bool]:
        """Send one request, read its answer: (status, body, whether the connection may be reused)."""
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.decode("latin-1").partition("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_block.split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            # Chunked or close-delimited bodies are not expected from these servers.
            raise ProtocolError("no Content-Length")
        body = await self.reader.readexactly(int(headers["content-length"]))
        return status, body, headers.get("connection", "").lower() != "close"

    @property
    def alive(self) -> bool:
        # A peer's FIN ends the reader, a reset sets its exception; either closes the transport.
        return not (self.writer.is_closing() or self.reader.at_eof() or self.reader.exception() is not None)

    def close(self) -> None:
        self.writer.close()


class _Pool:
    """Keep-alive connections, opened on demand up to ``cap`` (then requests wait for one)."""

    def __init__(self, host: str, port: int, cap: int) -> None:
        self.host, self.port = host, port
        self._slots = asyncio.Semaphore(cap)
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self.opened = 0

    async def open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        connection = _Connection(reader, writer)
        self._all.add(connection)
        self.opened += 1
        return connection

    async def prefill(self, count: int) -> None:
        # Opened before t0, so connecting is not charged to the first requests.
        self._idle += await asyncio.gather(*(self.open() for _ in range(count)))

    async def acquire(self) -> _Connection:
        await self._slots.acquire()
        try:
            while self._idle:
                connection = self._idle.pop()
                # uvicorn closes a keep-alive connection idle for 5 s: one of those, reused,
                # would fail a request the server never saw.
                if connection.alive:
                    return connection
                self._drop(connection)
            return await self.open()
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: _Connection, *, reusable: bool) -> None:
        if reusable:
            self._idle.append(connection)
        else:
            self._drop(connection)
        self._slots.release()

    def _drop(self, connection: _Connection) -> None:
        self._all.discard(connection)
        connection.close()

    async def close(self) -> None:
        for connection in self._all:
            connection.close()
        for connection in self._all:
            with contextlib.suppress(OSError, ConnectionError):
                await connection.writer.wait_closed()
        self._all.clear()


async def run_fixed_rate(
    host: str,
    port: int,
    requests: Sequence[HttpRequest],
    *,
    rate: float,
    seconds: float,
    marker: bytes = b"",
    connections: int = 8,
    max_connections: int = 64,
    timeout: float = 30.0,
) -> FixedRateResult:
    """Send ``rate * seconds`` requests at ``t0 + i / rate``, cycling through ``requests`` in order.

    An answer is good when it is 2xx and contains ``marker``; latencies (good answers only) run
    from each request's scheduled time to its whole answer.
    """
    if rate <= 0 or seconds <= 0 or not requests:
        raise ValueError("rate and seconds must be > 0, and requests not empty")
    payloads = [request.encode(f"{host}:{port}") for request in requests]
    total = max(1, round(rate * seconds))
    pool = _Pool(host, port, max_connections)
    latencies: list[float] = []
    lags: list[float] = []
    errors: Counter[str] = Counter()

    async def one(payload: bytes, scheduled: float) -> None:
        lags.append(time.perf_counter() - scheduled)
        try:
            async with asyncio.timeout(timeout):
                connection = await pool.acquire()
                reusable = False
                try:
                    status, body, reusable = await connection.exchange(payload)
                finally:
                    pool.release(connection, reusable=reusable)
        except (OSError, ValueError, EOFError, asyncio.LimitOverrunError, ProtocolError) as exc:
            errors["timeout" if isinstance(exc, TimeoutError) else type(exc).__name__] += 1
            return
        if not 200 <= status < 300:
            errors[f"HTTP {status}"] += 1
        elif marker not in body:
            errors["unexpected body"] += 1
        else:
            latencies.append(time.perf_counter() - scheduled)

    # Frozen first: the collection it starts with blocks the loop, and the connections opened
    # next must not sit idle behind it (a server may close them meanwhile).
    with _old_objects_frozen():
        try:
            await pool.prefill(min(connections, max_connections))
            tasks = []
            t0 = time.perf_counter()
            for index in range(total):
                scheduled = t0 + index / rate
                # Always yield, even when late: the requests already started must get to run.
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                tasks.append(asyncio.create_task(one(payloads[index % len(payloads)], scheduled)))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - t0
        finally:
            await pool.close()
    return _result(rate, seconds, total, elapsed, latencies, lags, errors, pool.opened)


@contextlib.contextmanager
def _old_objects_frozen() -> Iterator[None]:
    """Keep the objects alive before the run out of the garbage collector's scans during it.

    In run.py's process (SQLAlchemy, Relais and connexion imported), one full collection took
    tens of milliseconds: every request due meanwhile was charged for it, a client-made tail.
    Frozen, they are not scanned; what the run itself allocates is still collected.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _result(
    rate: float,
    seconds: float,
    total: int,
    elapsed: float,
    latencies: list[float],
    lags: list[float],
    errors: Counter[str],
    opened: int,
) -> FixedRateResult:
    latencies.sort()
    lags.sort()

    def ms(value: float) -> float:
        return round(value * 1000, 2)

    return FixedRateResult(
        rate=rate,
        seconds=seconds,
        count=total,
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        elapsed_s=round(elapsed, 3),
        achieved_rps=round(len(latencies) / elapsed, 1),
        p50_ms=ms(percentile(latencies, 50)),
        p90_ms=ms(percentile(latencies, 90)),
        p99_ms=ms(percentile(latencies, 99)),
        max_ms=ms(latencies[-1]) if latencies else math.nan,
        dispatch_lag_p99_ms=ms(percentile(lags, 99)),
        dispatch_lag_max_ms=ms(lags[-1]) if lags else math.nan,
        connections=opened,
        latencies_s=latencies,
    )
