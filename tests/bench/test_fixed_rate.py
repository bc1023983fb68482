"""The open-loop generator's accounting, against a tiny local HTTP/1.1 server that sleeps.

Latencies are asserted only from below (a sleep is a lower bound) or by their order, never as
a speed: the machine may be busy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from bench.fixed_rate import FixedRateResult, HttpRequest, run_fixed_rate

REQUEST = HttpRequest("POST", "/echo", {"Content-Type": "application/json"}, b'{"numero": "1"}')
ANSWER = b'{"codeRetour": "S001"}'


@contextlib.asynccontextmanager
async def serving(
    handle: Callable[[int], Awaitable[tuple[int, bytes]]], *, keep_alive: float | None = None
) -> AsyncIterator[int]:
    """A keep-alive HTTP/1.1 server on 127.0.0.1; ``handle(n)`` gives the status and body of request n.

    ``keep_alive``: seconds a connection may stay idle before the server closes it (as uvicorn does).
    """
    counter = 0

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            while True:
                async with asyncio.timeout(keep_alive):
                    head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                index, counter = counter, counter + 1
                status, body = await handle(index)
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
        writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def run(
    handle: Callable[[int], Awaitable[tuple[int, bytes]]],
    *,
    rate: float,
    seconds: float,
    keep_alive: float | None = None,
) -> FixedRateResult:
    async def scenario() -> FixedRateResult:
        async with serving(handle, keep_alive=keep_alive) as port:
            return await run_fixed_rate(
                "127.0.0.1", port, [REQUEST], rate=rate, seconds=seconds, marker=b'"S001"', connections=2
            )

    return asyncio.run(scenario())


def test_a_slow_server_shows_its_service_time_and_every_request_is_counted() -> None:
    async def slow(index: int) -> tuple[int, bytes]:
        await asyncio.sleep(0.02)
        return 200, ANSWER

    result = run(slow, rate=50, seconds=1)

    assert (result.count, result.errors) == (50, 0)
    assert len(result.latencies_s) == 50
    assert result.p50_ms >= 20
    assert result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    # Open loop: 50 requests over ~1 s, whatever the server's pace.
    assert 0.98 <= result.elapsed_s < 3


def test_a_stall_is_charged_to_every_request_scheduled_during_it() -> None:
    # One request at a time, like a server behind one write lock; request 10 holds it 200 ms.
    lock = asyncio.Lock()

    async def serial(index: int) -> tuple[int, bytes]:
        async with lock:
            await asyncio.sleep(0.2 if index == 10 else 0.001)
        return 200, ANSWER

    result = run(serial, rate=50, seconds=1)

    assert (result.count, result.errors) == (50, 0)
    slow = [latency for latency in result.latencies_s if latency >= 0.1]
    # The stalled request and those due in its first ~100 ms (one every 20 ms) all waited for it:
    # a closed-loop generator would have recorded the stalled one only.
    assert len(slow) >= 5
    assert result.max_ms >= 200
    # More connections were opened to keep sending on schedule while the first ones waited.
    assert result.connections > 2


def test_non_2xx_and_missing_marker_are_errors_not_latencies() -> None:
    async def mixed(index: int) -> tuple[int, bytes]:
        return [(200, ANSWER), (200, b'{"codeRetour": "S002"}'), (409, ANSWER)][index % 3]

    result = run(mixed, rate=100, seconds=0.3)

    assert result.count == 30
    assert (result.errors, result.error_kinds) == (20, {"unexpected body": 10, "HTTP 409": 10})
    assert len(result.latencies_s) == 10


def test_connections_the_server_closed_while_idle_are_not_reused() -> None:
    async def quick(index: int) -> tuple[int, bytes]:
        return 200, ANSWER

    # One request every 200 ms, and a server that closes connections idle for 50 ms.
    result = run(quick, rate=5, seconds=0.6, keep_alive=0.05)

    assert (result.count, result.errors) == (3, 0), result.error_kinds
