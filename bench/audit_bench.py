"""Audit journal benchmark: append throughput, sequencing and offline verification.

Three measurements, each on the database named by ``--database-url`` (default: a SQLite file
in a temporary directory; PostgreSQL: a scratch database, whose schema is DROPPED first):

``api``      append throughput inside real API calls: ``relais serve`` on that database, driven
             by bench/run.py's load generator on Rechercher usager (each call appends its event
             in the request's transaction); reports calls/s and the events the journal gained.
``appends``  appends alone, from 1 and from 8 threads (``--threads``; on PostgreSQL the threads
             do not wait for each other: no global lock), the events of a Rechercher usager
             call: ``append_event`` with one transaction per event (``single``), then for each
             ``--batch`` size the request pipeline's group commit, ``append_events`` writing
             that many events in one transaction (``batch``), and, for comparison,
             ``append_event`` called that many times in one transaction (``loop``).
             ``--repeat N`` runs each case N times and reports the best and the median.
``verify``   N events generated straight into the database, then the sequencer (leaf hashes),
             a signed checkpoint, and ``verify_database`` over the whole tree, each timed
             (wall and CPU seconds, workers included). ``--keep DIR`` keeps the journal (and its
             key); ``--reuse --keep DIR`` then times verification alone again, e.g. with
             ``--workers 1`` (fast scan in one process) or ``--workers 0`` (reference checker).

    python bench/audit_bench.py verify --events 1000000 [--database-url postgresql://.../scratch] [--keep DIR]
    python bench/audit_bench.py verify --reuse --keep DIR [--database-url ...] [--workers N]
    python bench/audit_bench.py appends --events 20000 --batch 50 100 200 [--threads 1 8] [--repeat 3]
    python bench/audit_bench.py api --seconds 10

Absolute figures belong to the machine; they are reported in the README with its description.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import insert, text  # noqa: E402

from audit.checkpoints import create_checkpoint, signing_key  # noqa: E402
from audit.journal import DraftedEvent, append_event, append_events, event_leaf_hash, sequence_pending  # noqa: E402
from audit.models import AuditEvent  # noqa: E402
from audit.verify import verify_database  # noqa: E402
from relais.core.auditing import AuditDraft  # noqa: E402
from relais.core.config import Settings  # noqa: E402
from relais.core.db import Database, create_db_engine  # noqa: E402
from relais.migrate import upgrade  # noqa: E402
from relais.schema import metadata  # noqa: E402

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@contextmanager
def scratch_database(url: str | None, keep: Path | None = None) -> Iterator[tuple[str, Path]]:
    """A fresh journal; with ``keep``, a directory holding the signing key (and the SQLite file)
    that outlives the run, so that ``verify --reuse`` can time verification alone again."""
    with tempfile.TemporaryDirectory(prefix="relais-audit-bench-") as directory:
        data_dir = keep or Path(directory)
        data_dir.mkdir(parents=True, exist_ok=True)
        if keep is not None and not url:
            url = f"sqlite:///{(data_dir / 'bench.db').as_posix()}"
        if url and url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        elif url:
            engine = create_db_engine(url)
            with engine.begin() as connection:
                metadata.drop_all(connection)
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            engine.dispose()
        else:
            url = f"sqlite:///{(data_dir / 'bench.db').as_posix()}"
        upgrade(url)
        yield url, data_dir


def _event(index: int) -> dict[str, Any]:
    content: dict[str, Any] = {
        "seq": index + 1,
        "occurred_at": T0 + timedelta(milliseconds=index * 37),
        "request_id": uuid.uuid4().hex,
        "channel": "partner-api",
        "operation": "RechercherUsagerParNumeroFranceTravail",
        "client_id": f"editeur-{index % 40}",
        "organisation": f"CD{index % 100:02d}",
        "agent_nom": "Martin",
        "agent_prenom": "Claire",
        "agent_identifiant": f"AGT-{index % 5000:05d}",
        "usager_id": str(index % 200_000),
        "usager_nir_index": f"{index % 200_000:064x}",
        "decision": "allowed",
        "reason": None,
        "http_status": 200,
        "agent_id": index % 5000,
        "habilitation_id": f"H{index % 9000}",
        "acr": None,
        "scopes": "api_rechercher-usagerv2 rechercheusager",
        "purpose": "accompagnement",
        "data_origin": "reference-store",
        "upstream_request_id": None,
        "target": None,
        "details": None,
    }
    content["hash"] = event_leaf_hash(content).hex()
    content["prev_hash"] = ""
    return content


def generate(database: Database, count: int) -> float:
    """Insert ``count`` events directly (not through requests); returns the seconds taken."""
    started = time.perf_counter()
    batch = 10_000
    with database.engine.begin() as connection:
        for start in range(0, count, batch):
            rows = [_event(index) for index in range(start, min(count, start + batch))]
            connection.execute(insert(AuditEvent.__table__), rows)  # type: ignore[attr-defined]
        if database.dialect == "postgresql":
            connection.execute(text("SELECT setval('audit_event_seq_seq', :n + 1, false)"), {"n": count})
    return time.perf_counter() - started


def generate_through_appender(database: Database, count: int) -> float:
    """Write ``count`` events as the app does (``audit.journal.append_events``, the request
    pipeline's group commit: sequence numbers, escaping, leaf hashes), 10,000 a transaction;
    returns the seconds taken."""
    started = time.perf_counter()
    batch = 10_000
    for start in range(0, count, batch):
        drafted = []
        for index in range(start, min(count, start + batch)):
            row = _event(index)
            draft = AuditDraft(
                channel=row["channel"],
                operation=row["operation"],
                client_id=row["client_id"],
                organisation=row["organisation"],
                agent_nom=row["agent_nom"],
                agent_prenom=row["agent_prenom"],
                agent_identifiant=row["agent_identifiant"],
                usager_id=row["usager_id"],
                usager_nir_index=row["usager_nir_index"],
                habilitation_id=row["habilitation_id"],
                scopes=row["scopes"],
                purpose=row["purpose"],
                data_origin=row["data_origin"],
                agent_id=row["agent_id"],
            )
            drafted.append(DraftedEvent(draft, row["request_id"], 200, row["occurred_at"]))
        with database.transaction() as session:
            append_events(session, drafted)
    return time.perf_counter() - started


def _time_verify(database: Database, settings: Settings, workers: int | None) -> tuple[float, float, Any]:
    """Wall and CPU seconds (this process and its workers) of one ``verify_database`` run."""
    cpu = os.times()
    started = time.perf_counter()
    with database.session() as session:
        report = verify_database(
            session, [signing_key(settings).public_key()], workers=workers or None, reference=workers == 0
        )
    wall = time.perf_counter() - started
    after = os.times()
    used = (after.user + after.system + after.children_user + after.children_system) - (
        cpu.user + cpu.system + cpu.children_user + cpu.children_system
    )
    return wall, used, report


def bench_verify(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "measure": "verify",
        "dialect": "postgresql" if args.database_url else "sqlite",
        "events": args.events,
    }
    if args.reuse:
        # Time verification alone on the journal a previous ``--keep`` run left.
        url = args.database_url or f"sqlite:///{(args.keep / 'bench.db').as_posix()}"
        settings = Settings(data_dir=args.keep, database_url=url)
        database = Database(url)
        try:
            verifying, cpu, report = _time_verify(database, settings, args.workers)
        finally:
            database.dispose()
    else:
        with scratch_database(args.database_url, args.keep) as (url, data_dir):
            settings = Settings(data_dir=data_dir, database_url=url)
            database = Database(url)
            try:
                writer = generate_through_appender if args.appender else generate
                result["generate_s"] = round(writer(database, args.events), 1)
                result["written_by"] = "append_events" if args.appender else "direct insert"
                started = time.perf_counter()
                result["sequenced"] = sequence_pending(database)
                result["sequence_s"] = round(time.perf_counter() - started, 1)
                started = time.perf_counter()
                checkpoint = create_checkpoint(database, settings, now=datetime.now(UTC))
                result["checkpoint_s"] = round(time.perf_counter() - started, 2)
                result["tree_size"] = checkpoint.tree_size if checkpoint else None
                verifying, cpu, report = _time_verify(database, settings, args.workers)
            finally:
                database.dispose()
    result.update(
        {
            "workers": args.workers,
            "verify_s": round(verifying, 1),
            "verify_cpu_s": round(cpu, 1),
            "verify_events_per_s": round(report.leaves / verifying) if verifying else None,
            "ok": report.ok,
            "summary": report.summary(),
        }
    )
    return result


def _draft(index: int) -> AuditDraft:
    """What a Rechercher usager call's event carries (agent, usager, habilitation, scopes)."""
    return AuditDraft(
        channel="partner-api",
        operation="RechercherUsagerParNumeroFranceTravail",
        client_id=f"editeur-{index % 40}",
        organisation=f"CD{index % 100:02d}",
        agent_nom="Martin",
        agent_prenom="Claire",
        agent_identifiant=f"AGT-{index % 5000:05d}",
        usager_id=str(index % 200_000),
        usager_nir_index=f"{index % 200_000:064x}",
        agent_id=index % 5000,
        habilitation_id=f"H{index % 9000}",
        scopes="api_rechercher-usagerv2 rechercheusager",
        purpose="accompagnement",
        data_origin="reference-store",
    )


def _append_single(database: Database, count: int, _batch: int, done: list[int]) -> None:
    """``count`` events through ``append_event``, one transaction (one commit) each."""
    for index in range(count):
        with database.transaction() as session:
            append_event(
                session, _draft(index), request_id=uuid.uuid4().hex, http_status=200, occurred_at=datetime.now(UTC)
            )
        done.append(1)


def _append_loop(database: Database, count: int, batch: int, done: list[int]) -> None:
    """``count`` events, ``batch`` per transaction, each through ``append_event``."""
    for start in range(0, count, batch):
        stop = min(count, start + batch)
        with database.transaction() as session:
            for index in range(start, stop):
                append_event(
                    session, _draft(index), request_id=uuid.uuid4().hex, http_status=200, occurred_at=datetime.now(UTC)
                )
        done.append(stop - start)


def _append_batch(database: Database, count: int, batch: int, done: list[int]) -> None:
    """``count`` events, ``batch`` per transaction, through one ``append_events`` each: the
    request pipeline's group commit (``api.audit_batches.AuditBatches``)."""
    for start in range(0, count, batch):
        stop = min(count, start + batch)
        with database.transaction() as session:
            append_events(
                session,
                [DraftedEvent(_draft(index), uuid.uuid4().hex, 200, datetime.now(UTC)) for index in range(start, stop)],
            )
        done.append(stop - start)


APPEND_PATHS: dict[str, Callable[[Database, int, int, list[int]], None]] = {
    "single": _append_single,
    "loop": _append_loop,
    "batch": _append_batch,
}


def _time_appends(
    database: Database, path: str, events: int, batch: int, threads: int
) -> tuple[int, float, float, list[str]]:
    """(events committed, events committed per second, client CPU microseconds per event,
    errors) of one run. A thread that fails (e.g. SQLite's single connection not freed within
    the pool timeout) stops; its committed events still count, the error is reported."""
    per_thread = max(1, events // threads)
    target = APPEND_PATHS[path]
    done: list[int] = []
    errors: list[str] = []

    def run() -> None:
        try:
            target(database, per_thread, batch, done)
        except Exception as exc:
            errors.append(type(exc).__name__)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    cpu = time.process_time()
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    total = sum(done)
    return total, total / elapsed, (time.process_time() - cpu) / max(1, total) * 1e6, errors


def bench_appends(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "measure": "appends",
        "dialect": "postgresql" if args.database_url else "sqlite",
        "events_per_run": args.events,
        "repeat": args.repeat,
    }
    cases = [("single", 1)] if "single" in args.paths else []
    cases += [(path, size) for size in args.batch for path in ("batch", "loop") if size > 1 and path in args.paths]
    appended = 0
    with scratch_database(args.database_url) as (url, _):
        database = Database(url)
        try:
            for path, size in cases:
                for threads in args.threads:
                    rates, cpus, errors = [], [], []
                    for _ in range(args.repeat):
                        total, rate, cpu, failed = _time_appends(database, path, args.events, size, threads)
                        appended += total
                        rates.append(rate)
                        cpus.append(cpu)
                        errors += failed
                    name = f"{path}_{size}_threads_{threads}"
                    results[name] = {
                        "events_per_s_best": round(max(rates)),
                        "events_per_s_median": round(statistics.median(rates)),
                        "events_per_s_runs": [round(rate) for rate in rates],
                        "client_cpu_us_per_event_median": round(statistics.median(cpus)),
                    }
                    if errors:
                        results[name]["failed_threads"] = errors
            started = time.perf_counter()
            results["sequenced"] = sequence_pending(database)
            results["sequence_s"] = round(time.perf_counter() - started, 2)
            # Every event committed, batched or not, is in the tree: none lost, none skipped.
            results["all_sequenced"] = results["sequenced"] == appended
        finally:
            database.dispose()
    return results


def bench_api(args: argparse.Namespace) -> dict[str, Any]:
    """Rechercher usager calls through ``relais serve``; each appends one audit event."""
    from bench import run

    with scratch_database(args.database_url) as (url, data_dir):
        port = run.free_port()
        base = f"http://{run.LOOPBACK}:{port}"
        env = run.clean_env(data_dir, base)
        env["RELAIS_DATABASE_URL"] = url
        env["RELAIS_GENERATE_DEV_KEYS"] = "true"
        env["RELAIS_AUDIT_CHECKPOINT_INTERVAL_SECONDS"] = "0"
        facts = run.load_demo(env)
        client = facts["clients"][0]
        server = run.Server(
            "relais",
            [str(run.relais_command()), "serve", "--host", run.LOOPBACK, "--port", str(port)],
            env=env,
            log=data_dir / "serve.log",
            cpu=None,
        )
        database = Database(url)
        try:
            server.wait_healthy(base)
            token = run.access_token(f"{base}/connexion/oauth2/access_token?realm=/agent", client)
            # The demo's habilitated agent: partner calls need one (issue #4).
            agent = run.AGENT_HEADERS
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **agent}
            search = f"{base}/partenaire{run.SEARCH_PATH}"
            numero = run.pick_usager(search, headers, facts, client.get("organisation", ""))
            body = json.dumps({"numeroFranceTravail": numero}).encode()
            with database.session() as session:
                before = int(session.execute(text("SELECT count(*) FROM audit_event")).scalar_one())
            run.skip_missing_sniffio()
            phase = run.run_loop(run.measure("relais", search, body, headers, run.RELAIS_MARKER, server, args))
            with database.session() as session:
                after = int(session.execute(text("SELECT count(*) FROM audit_event")).scalar_one())
            started = time.perf_counter()
            sequenced = sequence_pending(database)
            sequencing = time.perf_counter() - started
        finally:
            server.stop()
            database.dispose()
    return {
        "measure": "api",
        "dialect": "postgresql" if args.database_url else "sqlite",
        "calls_per_s": phase.rps,
        "p50_ms": phase.p50_ms,
        "p99_ms": phase.p99_ms,
        "errors": phase.error_kinds,
        "events_appended": after - before,
        "sequenced_after": sequenced,
        "sequence_s": round(sequencing, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measure", choices=("verify", "appends", "api"))
    parser.add_argument("--database-url", default=os.environ.get("RELAIS_BENCH_DATABASE_URL"))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests-max", type=int, default=None)
    parser.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[50],
        help="appends: events per transaction (one or more sizes), besides one per transaction",
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8], help="appends: thread counts")
    parser.add_argument("--repeat", type=int, default=1, help="appends: runs of each case (best and median)")
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=tuple(APPEND_PATHS),
        default=list(APPEND_PATHS),
        help="appends: which ways of appending to time",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="verify: keep the key (and SQLite file) in this directory"
    )
    parser.add_argument("--reuse", action="store_true", help="verify: time verification of a --keep journal only")
    parser.add_argument(
        "--appender",
        action="store_true",
        help="verify: write the events through the app's appender (audit.journal.append_events), not direct inserts",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="verify: worker processes (default: automatic; 1: in process; 0: the reference checker)",
    )
    args = parser.parse_args(argv)
    result = {"verify": bench_verify, "appends": bench_appends, "api": bench_api}[args.measure](args)
    result["cpus"] = os.cpu_count()
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
