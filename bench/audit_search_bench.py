"""Audit search latency by usager over a large journal, on SQLite and PostgreSQL.

Fills a scratch database (migrated to head, so with the search indexes of
``audit/incident_models.py``) with N synthetic audit events — many organisations, clients and
agents, about 20 events per usager, a blind index per usager — then times
``audit.search.search`` (one page of 100 events plus the total count) for random usagers, as
an RSSI (restricted to their organisation) and as the CSSI (every organisation), and the
« qui a consulté mon dossier » report. The rows are inserted directly (COPY on PostgreSQL):
what is measured is the search, not the append path (see ``bench/audit_bench.py`` for that).

    .venv/bin/python bench/audit_search_bench.py --events 1000000
    .venv/bin/python bench/audit_search_bench.py --events 1000000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/relais_h5

The PostgreSQL database named is EMPTIED first (its schema dropped and migrated again).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from audit.report import who_accessed
from audit.search import Filters, UsagerCible, search
from relais.core.db import Database, create_db_engine
from relais.migrate import upgrade
from relais.schema import metadata

ORGANISATIONS = [f"CD{n:02d}" for n in range(1, 41)]
OPERATIONS = (
    "RechercherUsagerParNumeroFranceTravail",
    "recupererDonneesParIdRci",
    "recupererContratV2",
    "lectureOrientation",
)
COLUMNS = (
    "id",
    "seq",
    "occurred_at",
    "request_id",
    "channel",
    "operation",
    "client_id",
    "organisation",
    "agent_identifiant",
    "agent_id",
    "usager_id",
    "usager_nir_index",
    "decision",
    "reason",
    "http_status",
    "scopes",
    "purpose",
    "prev_hash",
    "hash",
)


def _reset(url: str) -> None:
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def _usager(number: int) -> tuple[str, str]:
    usager_id = hashlib.md5(f"u{number}".encode(), usedforsecurity=False).hexdigest()
    nir_index = hashlib.sha256(f"nir{number}".encode()).hexdigest()
    return usager_id, nir_index


def _rows(count: int, usagers: int, start: datetime) -> Iterator[tuple[object, ...]]:
    rng = random.Random(5)
    for number in range(1, count + 1):
        usager = rng.randrange(usagers)
        organisation = ORGANISATIONS[usager % len(ORGANISATIONS)]
        usager_id, nir_index = _usager(usager)
        denied = rng.random() < 0.03
        yield (
            number,
            number,
            start + timedelta(seconds=number * 3),
            f"req-{number}",
            "partner-api",
            OPERATIONS[number % len(OPERATIONS)],
            f"client-{organisation.lower()}",
            organisation,
            f"AGT-{rng.randrange(200):04d}",
            rng.randrange(1, 5000),
            usager_id,
            nir_index,
            "denied" if denied else "allowed",
            "usager_non_rattache" if denied else None,
            403 if denied else 200,
            "api_informations-administrativesv1 informationsadministrativesusager profil_accedant",
            "Instruction RSA",
            "0" * 64,
            hashlib.sha256(f"h{number}".encode()).hexdigest(),
        )


def fill(database: Database, count: int, usagers: int) -> float:
    started = time.perf_counter()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    if database.dialect == "postgresql":
        raw = database.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY audit_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in _rows(count, usagers, start):
                    copy.write_row(row)
            cursor.execute("SELECT setval(pg_get_serial_sequence('audit_event', 'id'), %s)", (count,))
            raw.commit()
            cursor.execute("ANALYZE audit_event")
            raw.commit()
        finally:
            raw.close()
    else:
        placeholders = ", ".join(f":{name}" for name in COLUMNS)
        statement = text(f"INSERT INTO audit_event ({', '.join(COLUMNS)}) VALUES ({placeholders})")  # noqa: S608
        batch: list[dict[str, object]] = []
        with database.engine.begin() as connection:
            for row in _rows(count, usagers, start):
                batch.append(dict(zip(COLUMNS, row, strict=True)))
                if len(batch) == 20_000:
                    connection.execute(statement, batch)
                    batch.clear()
            if batch:
                connection.execute(statement, batch)
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (
        f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
        f"p99 {p99 * 1000:6.1f} ms  max {ordered[-1] * 1000:6.1f} ms"
    )


def measure(database: Database, usagers: int, samples: int) -> dict[str, list[float]]:
    rng = random.Random(7)
    results: dict[str, list[float]] = {"rssi": [], "cssi": [], "rapport": []}
    with database.session() as session:
        for _ in range(samples):
            number = rng.randrange(usagers)
            usager_id, nir_index = _usager(number)
            target = UsagerCible((usager_id,), (nir_index,))
            own = frozenset({ORGANISATIONS[number % len(ORGANISATIONS)]})
            for name, filters in (
                ("rssi", Filters(usager=target, visible=own)),
                ("cssi", Filters(usager=target)),
            ):
                started = time.perf_counter()
                page = search(session, filters, limit=100)
                results[name].append(time.perf_counter() - started)
                assert page.total > 0
            started = time.perf_counter()
            who_accessed(session, Filters(usager=target))
            results["rapport"].append(time.perf_counter() - started)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--events-per-usager", type=int, default=20)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (emptied!); default: a scratch SQLite file")
    options = parser.parse_args(argv)
    scratch = None
    url = options.database_url
    if not url:
        scratch = tempfile.TemporaryDirectory(prefix="relais-audit-search-")
        url = f"sqlite:///{Path(scratch.name) / 'bench.db'}"
    else:
        _reset(url)
    upgrade(url)
    database = Database(url)
    usagers = max(1, options.events // options.events_per_usager)
    try:
        elapsed = fill(database, options.events, usagers)
        print(f"{database.dialect}: {options.events} events, {usagers} usagers, filled in {elapsed:.0f} s")
        # A first pass warms the caches, as a running server's would be.
        measure(database, usagers, 20)
        results = measure(database, usagers, options.samples)
        for name, label in (
            ("rssi", "search by usager, RSSI (own organisation), page of 100 + total"),
            ("cssi", "search by usager, CSSI (all organisations), page of 100 + total"),
            ("rapport", "« qui a consulté mon dossier » report"),
        ):
            print(f"  {label:<66} {_percentiles(results[name])}")
    finally:
        database.dispose()
        if scratch is not None:
            scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
