"""The event-loop reader: the same answers as a session, or None (never an error)."""

from __future__ import annotations

import asyncio

from sqlalchemy import Select, bindparam, select
from sqlmodel import col

from relais.core.db import Database
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


def test_a_database_out_of_reach_answers_none_and_is_not_asked_again_at_once() -> None:
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
