"""The event-loop reader: the same answers as a session, or None (never an error)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from anyio.from_thread import start_blocking_portal
from sqlalchemy import Select, bindparam, select, text
from sqlmodel import col

from relais.core import loop_connections
from relais.core.db import Database
from relais.core.loop_connections import READS_APPLICATION_NAME
from relais.core.loop_reads import PostgresLoopReader
from relais.core.tables import Organisation


def _organisations(database: Database) -> None:
    with database.transaction() as session:
        session.add(Organisation(code="LR-A", type="CD", libelle="Département A", territoire=["01"]))
        session.add(Organisation(code="LR-B", type="CD", libelle="Département B", territoire=["02", "03"]))


def test_an_in_memory_sqlite_database_has_no_reader() -> None:
    # A second connection to ":memory:" would open another, empty database.
    database = Database("sqlite://")
    try:
        assert database.loop_reader is None
    finally:
        database.dispose()


def test_each_read_gets_its_own_parameters_and_sees_what_is_committed(database: Database) -> None:
    reader = database.loop_reader
    assert reader is not None
    _organisations(database)

    def territoire_of(code: str) -> Select[tuple[list[str]]]:
        # The same shape each time: compiled once, but each read binds its own code.
        return select(col(Organisation.territoire)).where(col(Organisation.code) == code)

    # Or one statement, built once, run with each call's values.
    by_code = select(col(Organisation.territoire)).where(col(Organisation.code) == bindparam("code"))

    async def reads() -> list[list[tuple[object, ...]] | None]:
        return [
            await reader.rows(territoire_of("LR-A")),
            await reader.rows(territoire_of("LR-B")),
            await reader.rows(territoire_of("LR-INCONNU")),
            await reader.rows(by_code, {"code": "LR-B"}),
            await reader.rows(by_code, {"code": "LR-A"}),
        ]

    assert asyncio.run(reads()) == [[(["01"],)], [(["02", "03"],)], [], [(["02", "03"],)], [(["01"],)]]
    with database.transaction() as session:
        organisation = session.scalars(select(Organisation).where(col(Organisation.code) == "LR-A")).one()
        organisation.territoire = ["04"]
    # Committed a moment ago, seen by the next read (autocommit: no snapshot held).
    assert asyncio.run(reads())[0] == [(["04"],)]
    # Closed with the database; a later read opens a new connection.
    database.dispose()
    assert asyncio.run(reads())[1] == [(["02", "03"],)]


def test_nothing_is_written_through_the_reader(database: Database) -> None:
    reader = database.loop_reader
    assert reader is not None
    _organisations(database)

    assert asyncio.run(reader.rows("DELETE FROM organisation")) is None
    with database.session() as session:
        assert len(session.scalars(select(Organisation)).all()) == 2


def test_a_database_out_of_reach_answers_none_and_is_not_asked_again_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = Database("postgresql://relais@127.0.0.1:1/absent")
    reader = database.loop_reader
    assert isinstance(reader, PostgresLoopReader)

    async def twice() -> tuple[object, object, float]:
        first = await reader.scalar("SELECT 1")
        loop = asyncio.get_running_loop()
        started = loop.time()
        second = await reader.scalar("SELECT 1")
        return first, second, loop.time() - started

    try:
        first, second, waited = asyncio.run(twice())
    finally:
        database.dispose()
    assert first is None and second is None
    # The second call did not try to connect again: it answered at once.
    assert waited < 0.05
    # Said once in the log, with what failed but not the address of the database.
    logged = capsys.readouterr()
    lines = [line for line in (logged.out + logged.err).splitlines() if "loop_connections_failed" in line]
    assert len(lines) == 1
    assert "relais-loop-reads" in lines[0] and "127.0.0.1" not in lines[0]


def test_concurrent_reads_on_postgresql_run_side_by_side_and_survive_a_cancelled_one(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite's reader is one synchronous connection")
    reader = database.loop_reader
    assert isinstance(reader, PostgresLoopReader)
    _organisations(database)
    by_code = select(col(Organisation.territoire)).where(col(Organisation.code) == bindparam("code"))

    async def scenario() -> tuple[list[object], int, object, object]:
        # Each read holds its connection for 50 ms: eight reads on one connection would take
        # 0.4 s; on the pool's connections they overlap, each still with its own answer.
        slow = text("SELECT pg_sleep(0.05), CAST(:code AS text)")
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(reader.rows(slow.bindparams(code=f"c{index}")) for index in range(8)))
        elapsed = asyncio.get_running_loop().time() - started
        # A read cancelled mid-way (its caller went away) leaves no connection in a bad state.
        cancelled = asyncio.create_task(reader.rows(text("SELECT pg_sleep(5)")))
        await asyncio.sleep(0.1)
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        after = await asyncio.gather(*(reader.rows(by_code, {"code": code}) for code in ("LR-A", "LR-B") * 4))
        return [rows[0][1] if rows else None for rows in answers], round(elapsed * 1000), after[0], after[1]

    try:
        codes, elapsed_ms, first, second = asyncio.run(scenario())
    finally:
        database.dispose()
    assert codes == [f"c{index}" for index in range(8)]
    assert elapsed_ms < 300, f"the 8 reads did not overlap: {elapsed_ms} ms"
    assert first == [(["01"],)] and second == [(["02", "03"],)]


def _reader_connections(database: Database) -> int:
    """The reader's connections open on the database, as PostgreSQL counts them, once the ones
    just closed have gone (a backend ends a moment after its client leaves)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"
    )
    deadline = time.monotonic() + 5
    while True:
        with database.session() as session:
            count = int(session.execute(query, {"name": READS_APPLICATION_NAME}).scalar_one())
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_the_reader_s_connections_close_with_their_loop_or_from_another_thread(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite's reader has no connection of its own on a server")
    reader = database.loop_reader
    assert isinstance(reader, PostgresLoopReader)
    slow = text("SELECT pg_sleep(0.05), CAST(:code AS text)")

    async def four_at_once() -> list[object]:
        return await asyncio.gather(*(reader.rows(slow.bindparams(code=str(index))) for index in range(4)))

    # A loop that shuts down (asyncio.run, uvicorn, the tests' client) closes them on its way out.
    assert len(asyncio.run(four_at_once())) == 4
    assert _reader_connections(database) == 0
    # The tests' client runs the app's loop in a thread of its own, and the database is
    # disposed of from the test's thread while that loop still runs.
    try:
        with start_blocking_portal() as portal:
            assert all(portal.call(four_at_once))
            database.dispose()
            assert _reader_connections(database) == 0
            # A later read opens a connection again.
            assert portal.call(reader.scalar, "SELECT 41 + 1") == 42
    finally:
        database.dispose()
    assert _reader_connections(database) == 0


def test_a_statement_that_hangs_fails_after_the_timeout(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite's reader never waits (no busy timeout)")
    monkeypatch.setattr(loop_connections, "STATEMENT_TIMEOUT_SECONDS", 0.2)
    reader = database.loop_reader
    assert isinstance(reader, PostgresLoopReader)

    async def hung() -> tuple[object, float]:
        started = asyncio.get_running_loop().time()
        answer = await reader.rows(text("SELECT pg_sleep(3)"))
        return answer, asyncio.get_running_loop().time() - started

    try:
        answer, waited = asyncio.run(hung())
    finally:
        database.dispose()
    # None: the caller reads in its session instead; and it did not wait for the 3 s.
    assert answer is None
    assert waited < 1.5


def test_callers_asking_together_share_one_read_sent_after_each_of_them_asked(database: Database) -> None:
    """The policy version is read by every call: callers asking at the same moment share one
    read, but never one already sent, which may not see a change committed since."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite's reader reads at once, in the caller's turn")
    reader = database.loop_reader
    assert isinstance(reader, PostgresLoopReader)
    # Its answer differs at each execution: equal answers mean one read.
    stamp = "SELECT clock_timestamp()"
    # The version, read slowly: a read sent stays on its way for 0.3 s.
    slow_version = "SELECT v FROM (SELECT version AS v FROM policy_version WHERE id = 1) AS current, pg_sleep(0.3)"

    def bump() -> None:
        with database.transaction() as session:
            session.execute(text("UPDATE policy_version SET version = version + 1 WHERE id = 1"))

    async def scenario() -> tuple[set[object], object, object, object, object]:
        together = set(await asyncio.gather(*(reader.scalar(stamp) for _ in range(8))))
        first = asyncio.create_task(reader.scalar(slow_version))
        await asyncio.sleep(0.1)  # sent, and sleeping in the database
        await asyncio.to_thread(bump)  # committed while the first read is on its way
        second = await reader.scalar(slow_version)
        # A caller that goes away does not take the read away from the others who share it.
        leaving = asyncio.create_task(reader.scalar(slow_version))
        staying = asyncio.create_task(reader.scalar(slow_version))
        await asyncio.sleep(0.1)
        leaving.cancel()
        return together, await first, second, await staying, leaving.cancelled()

    try:
        together, first, second, staying, left = asyncio.run(scenario())
    finally:
        database.dispose()
    assert len(together) == 1
    assert isinstance(first, int) and second == first + 1
    assert staying == second and left
