"""Relais versus a bare Starlette JSON endpoint, on the same machine.

Starts ``relais serve`` (embedded SQLite by default, demo dataset) and ``bench/bare_app.py`` under
uvicorn, drives each in turn with the same load generator over loopback (asyncio + httpx, or wrk
with ``--wrk``), and reports requests/s, p50 and p99 latency, server CPU per request, and the
Relais / bare ratios. Absolute figures depend on the machine; only the ratios are meant to be
compared from one run to the next. With ``--half-peak`` (and ``--wrk``) it then drives both
servers at half of Relais' peak req/s with an open-loop generator (``bench/fixed_rate.py``) and
reports the hub-added p99 (issue #12).

    python bench/run.py [--seconds 10] [--concurrency 16] [--requests-max 20000] [--wrk]
    python bench/run.py --wrk --engine postgresql [--workers 2 | --replicas 3] [--redis-url URL]
    python bench/run.py --wrk --half-peak [--targets search,admin,write]

On PostgreSQL the bench uses a database of its own (``--database-url``, by default
``relais_bench`` on the local server), dropped and created again at each run: its name must
start with ``relais_bench``. ``--workers N`` runs ``relais serve --workers N``; ``--replicas N``
runs N ``relais serve`` processes on one database, each driven by its own wrk (the load split
evenly), their answers summed; server CPU is the sum over every server process.

See bench/README.md for how to read the output.

Longer than ~600 lines: a self-contained benchmark script (targets, load generators, CPU
accounting, report) that an operator copies and runs alone; it is not imported by Relais.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import httpx

# The bench runs beside an installed Relais (it starts `relais serve`): the demo's facts are its.
from relais.demo.orientation_criteria import CRITERES_COMPLETS

# `python bench/run.py` puts bench/ on sys.path, not the repository root that holds the bench
# package. Appended, so the Relais on PYTHONPATH or installed still comes first.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from bench.fixed_rate import FixedRateResult, HttpRequest, percentile, run_fixed_rate

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "latest.json"
LOOPBACK = "127.0.0.1"
SEARCH_PATH = "/rechercher-usager/v2/usagers/par-numero-francetravail"
SEARCH_SCOPE = "api_rechercher-usagerv2 rechercheusager profil_accedant"
# The demo dataset's habilitated agent of CD33: partner calls are made for a named agent.
AGENT_HEADERS = {"pa-nom-agent": "Martin", "pa-prenom-agent": "Claire", "pa-identifiant-agent": "AGT-0042"}
HEALTH_TIMEOUT_S = 300.0
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/relais_bench"
# An access token lives 1499 s: a longer run would end on 401s.
MAX_SECONDS = 1200.0
# Expected codeRetour values, checked with a byte search: parsing every answer would load the
# load generator's CPU (the two servers do not space their JSON the same way either).
RELAIS_MARKER = b'"S001"'
BARE_MARKER = b'"S002"'


# Processes ------------------------------------------------------------------------------------


def free_port() -> int:
    # The OS picks an unused port; the tiny race until the server binds it is acceptable here.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pick_cpus() -> tuple[int, int] | None:
    """Two CPUs this process may use: one for the server under test, one for the load generator.

    Pinning keeps the server and the load generator from migrating onto each other's core,
    which otherwise makes the ratio swing from run to run on a 2-core machine.
    """
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return cpus[0], cpus[1]


def pin_to(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None

    def pin() -> None:
        # Runs in the child between fork and exec, so the server and all its threads stay on `cpu`.
        os.sched_setaffinity(0, {cpu})

    return pin


def clean_env(data_dir: Path, public_url: str) -> dict[str, str]:
    # Drop any inherited RELAIS_* setting (a PostgreSQL URL, a keys file...) so the run is
    # always the documented one: embedded SQLite in a fresh temporary directory.
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAIS_")}
    env.update(
        RELAIS_DATA_DIR=str(data_dir),
        RELAIS_LOG_LEVEL="WARNING",
        # The token issuer and the URLs printed by `relais demo` must name the port we serve on.
        RELAIS_PUBLIC_URL=public_url,
        # The per-client limiter (20 calls/s by default) would answer 429 to a load test. It still
        # runs on every call; it just never refuses.
        RELAIS_RATE_LIMIT_PER_SECOND=str(10**9),
        # The detection rules run apart, after the measurements (``measure_detection``): run
        # by the server every 30 s, they would evaluate a target's events during the next
        # target (or the bare app's run, on the same CPU), whichever that happens to be.
        RELAIS_AUDIT_DETECTION_INTERVAL_SECONDS="0",
    )
    return env


class Server:
    """A server subprocess whose output goes to a log file (a full pipe would stall it)."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log: Path, cpu: int | None):
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=pin_to(cpu),
            # Its own session: Ctrl-C reaches only run.py, which then stops the server in order.
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log_file.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process and its children (``--workers``), from /proc."""
        own = _proc_cpu(self.process.pid)
        if own is None:
            return None
        return own + sum(filter(None, (_proc_cpu(pid) for pid in _descendants(self.process.pid))))

    def wait_healthy(self, base_url: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{base_url}/healthz").status_code == 200:
                        return
                time.sleep(0.2)
        raise BenchError(f"{self.name} not healthy after {timeout:.0f} s:\n{self.log_tail()}")


class BenchError(Exception):
    pass


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _proc_cpu(pid: int) -> float | None:
    fields = _proc_stat(pid)
    if fields is None:
        return None
    # Fields 14 and 15 of stat(5) (utime, stime), counted after the ")" that ends the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> list[int]:
    """Live processes below ``root`` (uvicorn's worker processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None:
                # Field 4 of stat(5): the parent pid.
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    queue = [root]
    while queue:
        children = parents.get(queue.pop(), [])
        found += children
        queue += children
    return found


def prepare_postgresql(url: str) -> str:
    """Drop and create the bench's own database; refuse any other (the run would wipe it)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith("relais_bench"):
        raise BenchError(f"refusing to reset database {name!r}: the bench's database name must start with relais_bench")
    if parts.hostname not in (LOOPBACK, "localhost"):
        raise BenchError(f"refusing a non-local PostgreSQL server: {parts.hostname}")
    admin_url = parts._replace(path="/postgres").geturl().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url


# Relais setup ---------------------------------------------------------------------------------


def relais_command() -> Path:
    # The console script of the interpreter running this file, so both use the same install.
    return Path(sys.executable).parent / "relais"


def load_demo(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [str(relais_command()), "demo", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"relais demo --json failed ({done.returncode}):\n{done.stderr[-3000:]}")
    facts: dict[str, Any] = json.loads(done.stdout)
    return facts


def require_loopback(url: str) -> str:
    # The benchmark must never send load anywhere but this machine.
    if urlsplit(url).hostname != LOOPBACK:
        raise BenchError(f"refusing to load a non-loopback URL: {url}")
    return url


def access_token(token_url: str, client: dict[str, Any], scope: str = SEARCH_SCOPE) -> str:
    # The only argon2 verification of the run; it happens before, and outside, the measurement.
    with httpx.Client(trust_env=False, timeout=30.0) as http:
        response = http.post(
            require_loopback(token_url),
            data={
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                "scope": scope,
            },
        )
    if response.status_code != 200:
        raise BenchError(f"token request answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["access_token"])


def pick_usager(search_url: str, headers: dict[str, str], facts: dict[str, Any], organisation: str) -> str:
    """A numéro France Travail that the client may see, checked by one real call answering S001.

    Usagers of the client's own organisation are tried first: another organisation's usager
    answers 403 (R002), which would benchmark a refusal instead of the nominal path.
    """
    usagers = sorted(facts["usagers"], key=lambda usager: usager.get("organisation") != organisation)
    answers: list[str] = []
    with httpx.Client(trust_env=False, timeout=30.0) as http:
        for usager in usagers:
            numero = str(usager["numeroFranceTravail"])
            response = http.post(search_url, json={"numeroFranceTravail": numero}, headers=headers)
            code = response.json().get("codeRetour") if response.content else None
            if response.status_code == 200 and code == "S001":
                return numero
            answers.append(f"{numero}: HTTP {response.status_code} {code}")
    raise BenchError("no demo usager answers S001 for the bench client:\n" + "\n".join(answers))


AUDIT_SEARCH_PATH = "/relais/audit/v1/evenements/recherche"
ORIENTATION_SCOPE = "api_orientationusagerv1 orientationusager"
CALCUL_PATH = "/partenaire/orientationusager/v1/calculOrientation"
DECISION_PATH = "/partenaire/orientationusager/v1/decisionOrientation"
# Usagers the write target cycles over: far more than the connections, so that an usager's
# calcul has long been answered when its décision is sent.
WRITE_USAGERS = 64
# wrk script of the write target: the prepared requests, sent in turn (calculs of every usager,
# then their décisions, and again: each décision finds the orientation its calcul left pending).
# wrk calls request() once before the run to check what it returns (script_verify_request) and
# never sends that one: it gets the first request without moving along the cycle. Otherwise each
# wrk run skipped the first usager's calcul, and its décision answered 404 AUCUNE_ORIENTATION_EN_ATTENTE
# (nothing calculated yet) or 409 ORIENTATION_NON_EN_ATTENTE (already decided by the warm-up).
WRK_CYCLE_SCRIPT = """
local plan = {plan}
local requests = {{}}
local next_index = 0
local checked = false
init = function(args)
  for i, item in ipairs(plan) do
    requests[i] = wrk.format(item[1], item[2], item[3], item[4])
  end
end
request = function()
  if not checked then
    checked = true
    return requests[1]
  end
  next_index = next_index % #requests + 1
  return requests[next_index]
end
"""
ADMIN_MARKER = b'"evenements"'


def write_requests(env: dict[str, str], token_url: str, client: dict[str, Any], base_url: str) -> list[HttpRequest]:
    """The write target's requests, in order: calculOrientation of each usager, then their
    decisionOrientation (wrk cycles through them, and so does the fixed-rate generator).

    The usagers are the client's own ones answering S001, up to ``WRITE_USAGERS``; their jetons
    come from real Rechercher usager calls, before the measure.
    """
    from sqlalchemy import text

    from relais.core.config import Settings
    from relais.core.db import Database

    settings = Settings(data_dir=Path(env["RELAIS_DATA_DIR"]), database_url=env.get("RELAIS_DATABASE_URL", ""))
    database = Database(settings.resolved_database_url)
    try:
        with database.engine.connect() as connection:
            numeros = list(
                connection.execute(text("SELECT numero_france_travail FROM usager ORDER BY numero_france_travail"))
                .scalars()
                .all()
            )
    finally:
        database.dispose()
    token = access_token(token_url, client, scope=f"{SEARCH_SCOPE} {ORIENTATION_SCOPE}")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **AGENT_HEADERS}
    jetons: list[str] = []
    with httpx.Client(trust_env=False, timeout=30.0) as http:
        for numero in numeros:
            response = http.post(
                require_loopback(base_url + "/partenaire" + SEARCH_PATH),
                json={"numeroFranceTravail": numero},
                headers=headers,
            )
            if response.status_code == 200 and response.json().get("codeRetour") == "S001":
                jetons.append(response.json()["jetonUsager"])
            if len(jetons) == WRITE_USAGERS:
                break
    if len(jetons) < 16:
        raise BenchError(f"only {len(jetons)} usagers answer S001 for the write target (16 at least)")
    today = datetime.now(UTC).date().isoformat()
    decision = {
        "etat_decision": "ACCEPTEE",
        "date_decision": today,
        "organisme_decision": "CD",
        "agent_decision": "Claire Martin",
    }

    def post(path: str, jeton: str, body: dict[str, Any]) -> HttpRequest:
        return HttpRequest("POST", path, {**headers, "ft-jeton-usager": jeton}, json.dumps(body).encode())

    return [post(CALCUL_PATH, jeton, CRITERES_COMPLETS) for jeton in jetons] + [
        post(DECISION_PATH, jeton, decision) for jeton in jetons
    ]


def wrk_cycle_script(requests: list[HttpRequest]) -> str:
    """A wrk Lua script sending ``requests`` in turn, over and over."""

    def entry(request: HttpRequest) -> str:
        # JSON string literals are valid Lua ones for this ASCII text (json.dumps escapes the rest).
        headers = ", ".join(f"[{json.dumps(name)}] = {json.dumps(value)}" for name, value in request.headers.items())
        return (
            f"{{{json.dumps(request.method)}, {json.dumps(request.path)}, {{{headers}}}, "
            f"{json.dumps(request.body.decode())}}}"
        )

    return WRK_CYCLE_SCRIPT.format(plan="{" + ",\n".join(entry(request) for request in requests) + "}")


def admin_token(env: dict[str, str], public_url: str) -> str:
    """An admin token for the Gironde's security officer (RSSI), as after a ProConnect login.

    The officer's account and role are provisioned the way the console's demo personas are
    (audited domain changes); the token is signed with the run's key set. Imported here: the
    other targets need none of Relais' code in the bench process.
    """
    from datetime import timedelta

    from api.console.personas import BY_KEY, provision
    from audit.journal import JournalRecorder
    from relais.core.admin_tokens import issue_admin_token
    from relais.core.config import Settings
    from relais.core.db import Database
    from relais.core.keys import load_keyset

    settings = Settings(
        data_dir=Path(env["RELAIS_DATA_DIR"]),
        database_url=env.get("RELAIS_DATABASE_URL", ""),
        public_url=public_url,
    )
    now = datetime.now(UTC)
    database = Database(settings.resolved_database_url)
    try:
        with database.transaction() as session:
            found = provision(session, BY_KEY["rssi-cd33"], now, recorder=JournalRecorder(), request_id="bench-admin")
    finally:
        database.dispose()
    if found is None:
        raise BenchError("the demo dataset has no CD33 organisation for the RSSI persona")
    agent_id, organisation = found
    return issue_admin_token(
        load_keyset(settings.resolved_keys_file),
        settings,
        agent_id=agent_id,
        organisation=organisation,
        acr="eidas1-mfa",
        auth_time=now - timedelta(seconds=1),
        now=now,
    )


# Load generator -------------------------------------------------------------------------------


@dataclass
class Phase:
    target: str
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    server_cpu_pct: float | None = None
    # Server CPU time per good answer: unlike req/s, it does not depend on how fast the load
    # generator is, as long as the server is not starved of CPU.
    server_cpu_ms_per_request: float | None = None
    loadgen_cpu_pct: float = 0.0


async def drive(
    clients: list[httpx.AsyncClient],
    url: str,
    body: bytes,
    headers: dict[str, str],
    marker: bytes,
    *,
    seconds: float,
    requests_max: int | None,
) -> tuple[list[float], Counter[str], float]:
    """Keep one request in flight per client until `seconds` pass or `requests_max` are sent.

    Returns the latencies of good answers, the count of bad ones by kind, and the wall time.
    """
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    budget = requests_max if requests_max is not None else math.inf
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < budget and time.perf_counter() < deadline:
            # One event loop thread: taking a ticket needs no lock.
            sent += 1
            began = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            latency = time.perf_counter() - began
            if not 200 <= response.status_code < 300:
                errors[f"HTTP {response.status_code}"] += 1
            elif marker not in response.content:
                # A 200 with the wrong answer would measure a different code path.
                errors["unexpected body"] += 1
            else:
                latencies.append(latency)

    await asyncio.gather(*(worker(client) for client in clients))
    return latencies, errors, time.perf_counter() - start


async def measure(
    target: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    marker: bytes,
    server: Server,
    args: argparse.Namespace,
) -> Phase:
    # One client with one keep-alive connection per worker: the same `concurrency` HTTP/1.1
    # connections as one shared pool, but httpcore's pool checks every pooled connection (a poll()
    # syscall each) on every request, which made a shared 16-connection pool spend 2.7 times more
    # client CPU per request and capped the bare target at the client's speed.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            # trust_env=False: no proxy from the environment may divert loopback traffic.
            await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=30.0, trust_env=False))
            for _ in range(args.concurrency)
        ]
        # Warm-up: open the keep-alive connections and let first-call costs (lazy imports,
        # compiled validators, SQLite page cache) settle. Not recorded.
        await drive(clients, url, body, headers, marker, seconds=args.warmup, requests_max=None)
        server_cpu = server.cpu_seconds()
        own_cpu = time.process_time()
        latencies, errors, elapsed = await drive(
            clients, url, body, headers, marker, seconds=args.seconds, requests_max=args.requests_max
        )
        own_cpu = time.process_time() - own_cpu
        server_cpu_after = server.cpu_seconds()
    latencies.sort()
    phase = Phase(
        target=target,
        requests=len(latencies) + sum(errors.values()),
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        elapsed_s=round(elapsed, 3),
        # Throughput and latency count good answers only: a fast 429 or 401 is not a served request.
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(latencies, 50) * 1000, 2),
        p99_ms=round(percentile(latencies, 99) * 1000, 2),
        loadgen_cpu_pct=round(100 * own_cpu / elapsed, 1),
    )
    if server_cpu is not None and server_cpu_after is not None:
        phase.server_cpu_pct = round(100 * (server_cpu_after - server_cpu) / elapsed, 1)
        if latencies:
            phase.server_cpu_ms_per_request = round(1000 * (server_cpu_after - server_cpu) / len(latencies), 3)
    return phase


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
{headers}
"""


def _wrk_ms(text: str) -> float:
    """A wrk duration ("812.00us", "1.21ms", "2.03s") in milliseconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if match is None:
        return math.nan
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match.group(2)]
    return float(match.group(1)) * scale


def measure_detection(env: dict[str, str]) -> str:
    """The detection rules' CPU per event, on the journal the run wrote: ``relais audit detect``
    twice, the second run (nothing new) giving the command's own start-up cost."""

    def once() -> tuple[int, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [str(relais_command()), "audit", "detect"],
            cwd=REPO_ROOT,
            env={**env, "RELAIS_AUDIT_DETECTION_LAG_SECONDS": "0"},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise BenchError(f"relais audit detect failed ({done.returncode}):\n{done.stderr[-2000:]}")
        found = re.search(r"valués : (\d+)", done.stdout)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return (int(found.group(1)) if found else 0), cpu

    events, cpu = once()
    _, start_up = once()
    if not events:
        return "Detection rules: no event to evaluate."
    per_event = max(cpu - start_up, 0.0) / events * 1000
    return (
        f"Detection rules, run apart (relais audit detect): {events} events evaluated in "
        f"{max(cpu - start_up, 0.0):.2f} s of CPU, {per_event:.3f} ms per event (start-up of the command excluded)."
    )


def settle(servers: list[Server], *, quiet_share: float = 0.05, timeout: float = 180.0) -> float:
    """Wait until Relais' own background work is done (seconds waited).

    Relais runs periodic jobs (detection rules every 30 s, checkpoints): after a target's
    thousands of calls, the next run of the detection evaluates their events, on the server's
    CPU, which is also the next target's (and the bare app's). Each measurement starts once
    every server used under ``quiet_share`` of a CPU over half a second, so that it measures
    its own calls only. The jobs' own cost is measured apart (README, "Benchmark").
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(server.cpu_seconds() or 0.0 for server in servers)
        time.sleep(0.5)
        used = sum(server.cpu_seconds() or 0.0 for server in servers) - before
        if used < 0.5 * quiet_share * len(servers):
            break
    return time.monotonic() - started


def measure_wrk(
    target: str,
    url: str | list[str],
    body: bytes,
    headers: dict[str, str],
    server: Server | list[Server],
    args: argparse.Namespace,
    cpu: int | None,
    lua: str | None = None,
) -> Phase:
    """The same measure with wrk (C, one thread, pinned to the load CPU): the generator is then
    never the bottleneck, even against the bare app. Non-2xx answers count as errors.

    Several URLs (replicas): one wrk each, at the same time, the connections split evenly;
    requests are summed, and p50/p99 are the worst of the replicas'."""
    urls = url if isinstance(url, list) else [url]
    servers = server if isinstance(server, list) else [server]
    if len(urls) > 1:
        return _measure_wrk_many(target, urls, body, headers, servers, args, cpu, lua)
    url, server = urls[0], servers[0]
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk not found: apt-get install -y wrk (Debian package), or run without --wrk")
    lines = [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua or WRK_SCRIPT.format(body=json.dumps(body.decode()), headers="\n".join(lines)))
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []

    def run(seconds: float) -> str:
        command = [*pin, wrk, "-t1", f"-c{args.concurrency}", f"-d{max(1, round(seconds))}s", "--latency"]
        done = subprocess.run([*command, "-s", script.name, url], capture_output=True, text=True, check=True)
        return done.stdout

    try:
        run(args.warmup)
        server_cpu = server.cpu_seconds()
        started = time.perf_counter()
        output = run(args.seconds)
        elapsed = time.perf_counter() - started
        server_cpu_after = server.cpu_seconds()
    finally:
        os.unlink(script.name)
    total = int(re.search(r"([0-9]+) requests in", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", output)
    errors = int(bad.group(1)) if bad else 0
    good = total - errors
    # wrk's own clock for the rate; ours (process start included) only for CPU per second.
    measured = float(re.search(r"in ([0-9.]+)s", output).group(1))  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, flags=re.MULTILINE))
    phase = Phase(
        target=target,
        requests=total,
        errors=errors,
        error_kinds={"non-2xx": errors} if errors else {},
        elapsed_s=round(measured, 3),
        rps=round(good / measured, 1),
        p50_ms=round(_wrk_ms(percentiles.get("50", "")), 2),
        p99_ms=round(_wrk_ms(percentiles.get("99", "")), 2),
    )
    if server_cpu is not None and server_cpu_after is not None:
        phase.server_cpu_pct = round(100 * (server_cpu_after - server_cpu) / elapsed, 1)
        if good:
            phase.server_cpu_ms_per_request = round(1000 * (server_cpu_after - server_cpu) / good, 3)
    return phase


def _measure_wrk_many(
    target: str,
    urls: list[str],
    body: bytes,
    headers: dict[str, str],
    servers: list[Server],
    args: argparse.Namespace,
    cpu: int | None,
    lua: str | None = None,
) -> Phase:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk not found: apt-get install -y wrk (Debian package), or run without --wrk")
    lines = [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua or WRK_SCRIPT.format(body=json.dumps(body.decode()), headers="\n".join(lines)))
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    connections = max(1, args.concurrency // len(urls))

    def run(seconds: float) -> list[str]:
        command = [*pin, wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
        runs = [subprocess.Popen([*command, "-s", script.name, one], stdout=subprocess.PIPE, text=True) for one in urls]
        outputs = [process.communicate()[0] for process in runs]
        if any(process.returncode for process in runs):
            raise BenchError("wrk failed:\n" + "\n".join(outputs))
        return outputs

    def cpu_now() -> float | None:
        values = [one.cpu_seconds() for one in servers]
        return None if any(value is None for value in values) else sum(v for v in values if v is not None)

    try:
        run(args.warmup)
        server_cpu = cpu_now()
        started = time.perf_counter()
        outputs = run(args.seconds)
        elapsed = time.perf_counter() - started
        server_cpu_after = cpu_now()
    finally:
        os.unlink(script.name)
    total = errors = 0
    measured = 0.0
    p50: list[float] = []
    p99: list[float] = []
    for output in outputs:
        total += int(re.search(r"([0-9]+) requests in", output).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", output)
        errors += int(bad.group(1)) if bad else 0
        measured = max(measured, float(re.search(r"in ([0-9.]+)s", output).group(1)))  # type: ignore[union-attr]
        percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, flags=re.MULTILINE))
        p50.append(_wrk_ms(percentiles.get("50", "")))
        p99.append(_wrk_ms(percentiles.get("99", "")))
    good = total - errors
    phase = Phase(
        target=target,
        requests=total,
        errors=errors,
        error_kinds={"non-2xx": errors} if errors else {},
        elapsed_s=round(measured, 3),
        rps=round(good / measured, 1),
        p50_ms=round(max(p50), 2),
        p99_ms=round(max(p99), 2),
    )
    if server_cpu is not None and server_cpu_after is not None:
        phase.server_cpu_pct = round(100 * (server_cpu_after - server_cpu) / elapsed, 1)
        if good:
            phase.server_cpu_ms_per_request = round(1000 * (server_cpu_after - server_cpu) / good, 3)
    return phase


def skip_missing_sniffio() -> None:
    """Make httpcore's per-request ``import sniffio`` fail at once when sniffio is not installed.

    httpcore imports sniffio inside every request; anyio 4 no longer depends on it, and a failed
    import is not cached, so each request walks sys.path again (a quarter of the load generator's
    CPU per request on a slow machine). A None entry in sys.modules raises ImportError at once,
    and httpcore takes the same fallback it takes today ("asyncio").
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def run_loop(coro: Any) -> Any:
    skip_missing_sniffio()
    # uvloop, when installed (uvicorn[standard] brings it), cuts the load generator's own overhead.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# Latency at half of peak (open loop) ----------------------------------------------------------

# Issue #12's objective for Rechercher usager: Relais adds at most this to p99 at half of peak load.
HUB_ADDED_P99_TARGET_MS = 10.0
# Connections the fixed-rate generator may open when all are busy (then requests wait, and the
# wait counts in their latency). More would only move the queue from the client to the server.
HALF_PEAK_MAX_CONNECTIONS = 64


@dataclass
class HalfPeak:
    target: str
    rate: float
    relais: dict[str, Any]
    bare: dict[str, Any]
    # Relais p99 minus bare p99, both at `rate`: what the hub adds to the tail at that load.
    hub_added_p99_ms: float
    errors: int


def fixed_rate(
    base_url: str, requests: list[HttpRequest], marker: bytes, rate: float, args: argparse.Namespace
) -> FixedRateResult:
    # In this process, which main() pinned to the load generator's CPU once the servers were up.
    parts = urlsplit(require_loopback(base_url))
    return run_loop(
        run_fixed_rate(
            str(parts.hostname),
            int(parts.port or 80),
            requests,
            rate=rate,
            seconds=args.seconds,
            marker=marker,
            connections=args.concurrency,
            max_connections=HALF_PEAK_MAX_CONNECTIONS,
        )
    )


def measure_half_peak(
    label: str,
    peak: Phase,
    relais: tuple[str, list[HttpRequest], bytes],
    bare: tuple[str, HttpRequest],
    args: argparse.Namespace,
    relais_servers: list[Server],
) -> HalfPeak:
    """Relais, then the bare app, at half of Relais' peak req/s for this target, open loop.

    Both servers are warm (their peak runs just happened). The bare app answers the same rate,
    so the p99 difference is what the hub adds, the web stack and the machine being the same.
    """
    rate = round(peak.rps / 2, 1)
    if rate <= 0:
        raise BenchError(f"{label}: no good answer at peak, no half-peak rate to drive")
    base, requests, marker = relais
    settle(relais_servers)
    relais_result = fixed_rate(base, requests, marker, rate, args)
    settle(relais_servers)
    bare_result = fixed_rate(bare[0], [bare[1]], BARE_MARKER, rate, args)
    return HalfPeak(
        target=label,
        rate=rate,
        relais=relais_result.summary(),
        bare=bare_result.summary(),
        hub_added_p99_ms=round(relais_result.p99_ms - bare_result.p99_ms, 2),
        errors=relais_result.errors + bare_result.errors,
    )


def half_peak_notes(half_peaks: list[HalfPeak]) -> list[str]:
    notes = []
    for half in half_peaks:
        if half.errors:
            kinds = {"Relais": half.relais["error_kinds"], "bare": half.bare["error_kinds"]}
            notes.append(f"FLAGGED: half of peak, {half.target}: {half.errors} errors {kinds}.")
        for side, result in (("Relais", half.relais), ("bare", half.bare)):
            if result["achieved_rps"] < 0.95 * half.rate:
                # Below the schedule, the queue grew all run long: p99 depends on the run's length.
                notes.append(
                    f"Half of peak, {half.target}: {side} answered {result['achieved_rps']:.1f} req/s of "
                    f"{half.rate:.1f} scheduled, so it did not keep up and its p99 is not a steady state."
                )
        if max(half.relais["dispatch_lag_p99_ms"], half.bare["dispatch_lag_p99_ms"]) > 1.0:
            # The load CPU was busy or descheduled: a client-made delay inside both latencies.
            notes.append(
                f"Half of peak, {half.target}: the generator started requests late, p99 "
                f"{half.relais['dispatch_lag_p99_ms']:.1f} ms (Relais run) / {half.bare['dispatch_lag_p99_ms']:.1f} ms "
                "(bare run); that client delay is inside the latencies."
            )
    search = next((half for half in half_peaks if half.target.startswith("Rechercher usager")), None)
    if search is not None:
        verdict = "met" if search.hub_added_p99_ms <= HUB_ADDED_P99_TARGET_MS else "NOT met"
        notes.append(
            f"Issue #12 objective, hub-added p99 ≤ {HUB_ADDED_P99_TARGET_MS:g} ms at half of peak (Rechercher "
            f"usager): {search.hub_added_p99_ms:.2f} ms at {search.rate:.1f} req/s, {verdict}."
        )
    return notes


# Report ---------------------------------------------------------------------------------------


def ratio(relais: Phase, bare: Phase) -> dict[str, float]:
    def safe(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator else math.nan

    result = {
        "throughput_pct": round(100 * safe(relais.rps, bare.rps), 1),
        "p50_factor": round(safe(relais.p50_ms, bare.p50_ms), 1),
        "p99_factor": round(safe(relais.p99_ms, bare.p99_ms), 1),
    }
    if relais.server_cpu_ms_per_request and bare.server_cpu_ms_per_request:
        result["server_cpu_per_request_factor"] = round(
            relais.server_cpu_ms_per_request / bare.server_cpu_ms_per_request, 1
        )
    return result


def rounds_ratio(rounds: list[tuple[Phase, Phase]]) -> dict[str, float]:
    """The headline ratios as the median over rounds (each a search and a bare run side by side);
    with one round, that round's."""
    each = [ratio(relais, bare) for relais, bare in rounds]
    return {key: statistics.median(one[key] for one in each) for key in each[0] if all(key in one for one in each)}


def rounds_note(rounds: list[tuple[Phase, Phase]], ratios: dict[str, float]) -> str:
    pairs = "; ".join(
        f"{relais.rps:.1f} / {bare.rps:.1f} req/s = {ratio(relais, bare)['throughput_pct']:.1f} %"
        + (f", {relais.server_cpu_ms_per_request:.2f} ms CPU" if relais.server_cpu_ms_per_request else "")
        for relais, bare in rounds
    )
    return (
        f"Rechercher usager / bare over {len(rounds)} alternating rounds: {pairs}. Headline ratios: medians "
        f"({ratios['throughput_pct']:.1f} % of throughput)."
    )


def markdown(phases: list[Phase], ratios: dict[str, float], notes: list[str], half_peaks: list[HalfPeak]) -> str:
    def cpu(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} %"

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    lines = [
        "| target | requests | errors | req/s | p50 ms | p99 ms | server CPU | server CPU ms/req | load gen CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in phases:
        lines.append(
            f"| {phase.target} | {phase.requests} | {phase.errors} | {phase.rps:.1f} | {phase.p50_ms:.2f} "
            f"| {phase.p99_ms:.2f} | {cpu(phase.server_cpu_pct)} | {ms(phase.server_cpu_ms_per_request)} "
            f"| {cpu(phase.loadgen_cpu_pct)} |"
        )
    lines += [
        "",
        f"Relais / bare Starlette: {ratios['throughput_pct']:.1f} % of throughput, "
        f"p50 ×{ratios['p50_factor']:.1f}, p99 ×{ratios['p99_factor']:.1f}",
    ]
    if "server_cpu_per_request_factor" in ratios:
        lines.append(f"Server CPU per request: Relais ×{ratios['server_cpu_per_request_factor']:.1f} of bare Starlette")
    if half_peaks:
        lines += ["", *half_peak_table(half_peaks)]
    lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines)


def half_peak_table(half_peaks: list[HalfPeak]) -> list[str]:
    lines = [
        "At half of Relais' peak req/s, open loop (fixed rate; latency from each request's scheduled time):",
        "",
        "| target | req/s | requests | errors Relais / bare | Relais p50 ms | Relais p99 ms | bare p50 ms "
        "| bare p99 ms | hub-added p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for half in half_peaks:
        relais, bare = half.relais, half.bare
        lines.append(
            f"| {half.target} | {half.rate:.1f} | {relais['count']} | {relais['errors']} / {bare['errors']} "
            f"| {relais['p50_ms']:.2f} | {relais['p99_ms']:.2f} | {bare['p50_ms']:.2f} | {bare['p99_ms']:.2f} "
            f"| {half.hub_added_p99_ms:.2f} |"
        )
    return lines


def build_notes(
    phases: list[Phase], cpus: tuple[int, int] | None, args: argparse.Namespace, load_before: float | None
) -> list[str]:
    notes = [
        f"{args.seconds:g} s measured per target after {args.warmup:g} s warm-up, {args.concurrency} "
        f"concurrent keep-alive connections, at most {args.requests_max} requests; loopback only.",
        f"Load generator ({'wrk' if args.wrk else 'httpx, Python'}) and servers share this machine's "
        f"{os.cpu_count()} CPUs: "
        "absolute figures are machine-bound, compare ratios only.",
    ]
    if cpus is None:
        notes.append("Not pinned (fewer than 2 usable CPUs or no sched_setaffinity): expect noisier ratios.")
    else:
        notes.append(f"Servers pinned to CPU {cpus[0]}, load generator to CPU {cpus[1]}.")
    for phase in phases:
        if phase.errors:
            notes.append(f"FLAGGED: {phase.target} had {phase.errors} errors {phase.error_kinds}.")
        if phase.loadgen_cpu_pct >= 90:
            # The client, not the server, set the pace: that server could go faster.
            notes.append(
                f"{phase.target}: load generator at {phase.loadgen_cpu_pct:.0f} % CPU, so its req/s is a "
                "floor bounded by the client and the throughput ratio flatters Relais; the server CPU "
                "per request ratio does not depend on the client."
            )
    if load_before is not None and load_before >= 0.5:
        notes.append(f"Load average was {load_before:.2f} before the run: other processes competed for the CPUs.")
    return notes


# Main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per target")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (and connections)")
    parser.add_argument("--requests-max", type=int, default=20000, help="request cap per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds before each target")
    parser.add_argument("--wrk", action="store_true", help="drive the load with wrk (Debian package) instead of Python")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generator to CPUs")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="JSON results file")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite", help="Relais' database")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL database of the bench's own (dropped and created again; name starting with relais_bench)",
    )
    parser.add_argument("--workers", type=int, default=1, help="relais serve --workers N (PostgreSQL)")
    parser.add_argument(
        "--replicas", type=int, default=1, help="N relais serve processes on one database (PostgreSQL, --wrk)"
    )
    parser.add_argument(
        "--targets",
        type=lambda value: set(value.split(",")),
        default={"search"},
        help=(
            "Relais targets, comma-separated: search (Rechercher usager, always), admin (audit search by "
            "usager), write (calculOrientation/decisionOrientation, --wrk)"
        ),
    )
    parser.add_argument(
        "--redis-url", default="", help="RELAIS_REDIS_URL for the servers: rate limits counted in Redis"
    )
    parser.add_argument(
        "--half-peak",
        action="store_true",
        help="after each peak, drive Relais and the bare app at half of Relais' peak req/s, open loop (--wrk)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure Rechercher usager and the bare app this many times, alternating; ratios are medians (--wrk)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.rounds > 1 and (not args.wrk or args.replicas > 1)):
        parser.error("--rounds must be >= 1; more than 1 needs --wrk and one replica")
    if not args.targets <= {"search", "admin", "write"}:
        parser.error("--targets: search, admin, write")
    if "write" in args.targets and not args.wrk:
        parser.error("--targets write needs --wrk (its requests cycle in a wrk script)")
    if args.workers < 1 or args.replicas < 1:
        parser.error("--workers and --replicas must be >= 1")
    if (args.workers > 1 or args.replicas > 1) and args.engine != "postgresql":
        parser.error("--workers and --replicas need --engine postgresql (SQLite serves from one process)")
    if args.replicas > 1 and not args.wrk:
        parser.error("--replicas needs --wrk (one wrk per replica)")
    if args.half_peak and (not args.wrk or args.replicas > 1):
        parser.error("--half-peak needs --wrk (its peak), and one replica (the generator drives one server)")
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}] (the access token lives 1499 s)")
    if args.concurrency < 1 or args.requests_max < 1 or args.warmup < 0:
        parser.error("--concurrency and --requests-max must be >= 1, --warmup >= 0")
    return args


def mode_label(args: argparse.Namespace) -> str:
    parts = [args.engine]
    if args.workers > 1:
        parts.append(f"{args.workers} workers")
    if args.replicas > 1:
        parts.append(f"{args.replicas} replicas")
    if args.redis_url:
        parts.append("Redis limits")
    return f", {', '.join(parts)}"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so the finally blocks stop the servers.
    raise KeyboardInterrupt


@contextlib.contextmanager
def servers_stopped(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in reversed(servers):
            server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Taken before we start anything: a busy machine makes every figure, ratios included, noisier.
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    cpus = None if args.no_pin else pick_cpus()
    server_cpu = cpus[0] if cpus else None
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp, servers_stopped(servers):
        data_dir = Path(tmp) / "data"
        relais_ports, bare_port = [free_port() for _ in range(args.replicas)], free_port()
        relais_bases = [f"http://{LOOPBACK}:{port}" for port in relais_ports]
        relais_base = relais_bases[0]
        bare_base = f"http://{LOOPBACK}:{bare_port}"
        # Every replica issues tokens under the first one's URL: one issuer, as behind a load balancer.
        env = clean_env(data_dir, relais_base)
        if args.engine == "postgresql":
            env["RELAIS_DATABASE_URL"] = prepare_postgresql(args.database_url)
            env["RELAIS_GENERATE_DEV_KEYS"] = "true"
        if args.redis_url:
            env["RELAIS_REDIS_URL"] = args.redis_url

        print("Loading the demo dataset (relais demo --json)...", file=sys.stderr)
        facts = load_demo(env)
        relais_servers = [
            Server(
                f"relais serve #{index}",
                [
                    str(relais_command()),
                    "serve",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(port),
                    "--workers",
                    str(args.workers),
                ],
                env=env,
                log=Path(tmp) / f"relais-{index}.log",
                cpu=server_cpu,
            )
            for index, port in enumerate(relais_ports)
        ]
        servers.extend(relais_servers)
        relais = relais_servers[0]
        # Same uvicorn defaults as `relais serve` (one process, loop and http "auto").
        bare = Server(
            "bare Starlette",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--host",
                LOOPBACK,
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            env=env,
            log=Path(tmp) / "bare.log",
            cpu=server_cpu,
        )
        servers.append(bare)
        for one, base in zip(relais_servers, relais_bases, strict=True):
            one.wait_healthy(base)
        bare.wait_healthy(bare_base)
        if cpus is not None:
            # Pinned only now, so the demo load and server start-up above could use both CPUs.
            os.sched_setaffinity(0, {cpus[1]})

        client = facts["clients"][0]
        token = access_token(facts["token_url"], client)
        relais_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **AGENT_HEADERS}
        search_url = require_loopback(facts["api_base_url"].rstrip("/") + SEARCH_PATH)
        numero = pick_usager(search_url, relais_headers, facts, str(client.get("organisation", "")))
        body = json.dumps({"numeroFranceTravail": numero}).encode()
        bare_url = require_loopback(f"{bare_base}/partenaire{SEARCH_PATH}")
        bare_headers = {"Content-Type": "application/json", **AGENT_HEADERS}

        print(
            f"Measuring {args.seconds:g} s per target, concurrency {args.concurrency} "
            f"(client {client['client_id']}, usager {numero})...",
            file=sys.stderr,
        )
        load_cpu = cpus[1] if cpus else None
        # (label, requests, marker) of each Relais target, in the order measured; a target with
        # several requests sends them in turn (a wrk Lua cycle, or the fixed-rate generator).
        targets = [
            (
                "Rechercher usager (token + audit)",
                [HttpRequest("POST", urlsplit(search_url).path, relais_headers, body)],
                RELAIS_MARKER,
            )
        ]
        if "admin" in args.targets:
            admin_headers = {
                "Authorization": f"Bearer {admin_token(env, relais_base)}",
                "Content-Type": "application/json",
            }
            admin_body = json.dumps({"usager": {"numeroFranceTravail": numero}, "limite": 50}).encode()
            targets.append(
                (
                    "Audit — recherche par usager (admin)",
                    [HttpRequest("POST", AUDIT_SEARCH_PATH, admin_headers, admin_body)],
                    ADMIN_MARKER,
                )
            )
        if "write" in args.targets:
            label = "Orientation — calcul puis décision, alternés (écritures)"
            # No marker: the answers' status says whether the write was done.
            targets.append((label, write_requests(env, facts["token_url"], client, relais_base), b""))
        phases = []
        for label, requests, marker in targets:
            name = f"Relais — {label}{mode_label(args)}"
            first = requests[0]
            settle(relais_servers)
            if args.wrk:
                urls = [require_loopback(base + first.path) for base in relais_bases]
                lua = wrk_cycle_script(requests) if len(requests) > 1 else None
                phases.append(
                    measure_wrk(name, urls, first.body, dict(first.headers), relais_servers, args, load_cpu, lua)
                )
            else:
                url = require_loopback(relais_base + first.path)
                phases.append(run_loop(measure(name, url, first.body, dict(first.headers), marker, relais, args)))
        settle(relais_servers)
        if args.wrk:
            phases.append(measure_wrk("bare Starlette", bare_url, body, bare_headers, bare, args, load_cpu))
        else:
            phases.append(run_loop(measure("bare Starlette", bare_url, body, bare_headers, BARE_MARKER, bare, args)))
        half_peaks = []
        if args.half_peak:
            bare_request = HttpRequest("POST", urlsplit(bare_url).path, bare_headers, body)
            for (label, requests, marker), peak in zip(targets, phases, strict=False):
                print(f"Half of peak: {label}, {peak.rps / 2:.1f} req/s...", file=sys.stderr)
                half_peaks.append(
                    measure_half_peak(
                        label, peak, (relais_base, requests, marker), (bare_base, bare_request), args, relais_servers
                    )
                )
        # More rounds of the headline pair, search then bare, alternating (after the half-peak
        # runs: each round adds to the journal, which the admin target searches): on a machine whose
        # speed drifts (a shared VM), a ratio taken from one pair measured minutes apart moves
        # with the drift; the median over rounds measured side by side moves much less.
        rounds = [(phases[0], phases[-1])]
        search = targets[0][1][0]
        search_urls = [require_loopback(base + search.path) for base in relais_bases]
        for _ in range(args.rounds - 1):
            settle(relais_servers)
            again = measure_wrk(
                phases[0].target, search_urls, search.body, dict(search.headers), relais_servers, args, load_cpu
            )
            settle(relais_servers)
            rounds.append((again, measure_wrk("bare Starlette", bare_url, body, bare_headers, bare, args, load_cpu)))
        for server in servers:
            if server.process.poll() is not None:
                raise BenchError(f"{server.name} died during the run:\n{server.log_tail()}")
        detection_note = measure_detection(env) if args.replicas == 1 and args.workers == 1 else ""

    ratios = rounds_ratio(rounds)
    notes = build_notes(phases, cpus, args, load_before)
    if len(rounds) > 1:
        notes.append(rounds_note(rounds, ratios))
    for other in phases[1:-1]:
        # Every other target against the same bare endpoint, the search being the headline.
        extra = ratio(other, phases[-1])
        notes.append(
            f"{other.target}: {extra['throughput_pct']:.1f} % of bare throughput, p99 ×{extra['p99_factor']:.1f}"
            + (
                f", server CPU per request ×{extra['server_cpu_per_request_factor']:.1f}"
                if "server_cpu_per_request_factor" in extra
                else ""
            )
        )
    notes += half_peak_notes(half_peaks)
    if detection_note:
        notes.append(detection_note)
    print(markdown(phases, ratios, notes, half_peaks))
    flagged = any(phase.errors for phase in phases) or any(half.errors for half in half_peaks)
    write_json(args, phases, ratios, notes, cpus, flagged, load_before, half_peaks)
    return 1 if flagged else 0


def write_json(
    args: argparse.Namespace,
    phases: list[Phase],
    ratios: dict[str, float],
    notes: list[str],
    cpus: tuple[int, int] | None,
    flagged: bool,
    load_before: float | None,
    half_peaks: list[HalfPeak],
) -> None:
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "parameters": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "requests_max": args.requests_max,
            "engine": args.engine,
            "workers": args.workers,
            "replicas": args.replicas,
            "redis": bool(args.redis_url),
            "half_peak": args.half_peak,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "pinned": None if cpus is None else {"servers": cpus[0], "load_generator": cpus[1]},
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": load_before,
        },
        "targets": [asdict(phase) for phase in phases],
        "ratio": ratios,
        "half_peak": [asdict(half) for half in half_peaks],
        "flagged": flagged,
        "notes": notes,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_json_safe(result), indent=2, ensure_ascii=False) + "\n")
    print(f"\nJSON written to {args.output}", file=sys.stderr)


def _json_safe(value: Any) -> Any:
    # A target with no good answer has NaN percentiles; JSON has no NaN, so write null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
