"""Three ``relais serve`` replicas on one PostgreSQL database (and one Redis where it answers).

What a deployment behind a load balancer relies on, checked on real processes:

- a client's rate limit holds across the replicas (Redis), within 10 %;
- the periodic jobs run in one replica at a time: one audit checkpoint per interval, not three;
- a signing key rotated on the shared key file is accepted by every replica without a restart;
- a replica SIGKILLed under load loses nothing it acknowledged: every 2xx has its audit event,
  and the journal verifies.

PostgreSQL only: the embedded SQLite default serves from one process (``relais serve`` refuses
more). Bounded: one demo load, three servers, about 30 to 60 seconds.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
import redis
from sqlalchemy import text

from api.periodic import Leadership
from relais.core.db import Database
from tests.adapters.gateway_e2e_support import (
    AGENT,
    READY_TIMEOUT,
    TOKEN_PATH,
    Server,
    finish,
    relais_env,
    start_cli,
)
from tests.support.databases import server_url
from tests.support.scopes import RECHERCHE_SCOPES

pytestmark = pytest.mark.skipif(
    server_url() is None,
    reason="replicas share one PostgreSQL database: set RELAIS_TEST_DATABASE_URL (SQLite serves from one process)",
)

SEARCH_PATH = "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail"
CHECKPOINT_INTERVAL = 1.0
# The shared limit tested, in calls per second, for a client of its own: small, so that the
# load below asks several times more than it even on a slow, shared machine.
LIMIT = 4


def reachable_redis() -> str | None:
    url = os.environ.get("RELAIS_TEST_REDIS_URL", "")
    if not url:
        return None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError:
        return None
    return url


@dataclass
class Cluster:
    servers: list[Server]
    env: dict[str, str]
    database: Database
    secrets: dict[str, str]
    numero: str
    shared_limits: bool

    def token(self, server: Server, client_id: str, scopes: str = RECHERCHE_SCOPES) -> str:
        response = httpx.post(
            f"{server.url}{TOKEN_PATH}",
            params={"realm": "/agent"},
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": self.secrets[client_id],
                "scope": scopes,
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def search(self, http: httpx.Client, server: Server, token: str) -> httpx.Response:
        return http.post(
            f"{server.url}{SEARCH_PATH}",
            headers={"Authorization": f"Bearer {token}", **AGENT},
            json={"numeroFranceTravail": self.numero},
        )

    def checkpoints_between(self, start: datetime, end: datetime) -> list[datetime]:
        with self.database.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT issued_at FROM audit_checkpoint WHERE issued_at >= :start AND issued_at <= :end"),
                {"start": start, "end": end},
            ).scalars()
            return sorted(_aware(value) for value in rows)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Iterator[Cluster]:
    redis_url = reachable_redis()
    settings = {
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_AUDIT_CHECKPOINT_INTERVAL_SECONDS": str(int(CHECKPOINT_INTERVAL)),
        # Detection is not under test here: fewer background queries on a small machine.
        "RELAIS_AUDIT_DETECTION_INTERVAL_SECONDS": "0",
    }
    if redis_url:
        settings["RELAIS_REDIS_URL"] = redis_url
    # One data directory for all: the replicas share the key file and the checkpoint key, as
    # they would share a mounted secret.
    env = relais_env(tmp_path / "data", **settings)
    demo = json.loads(finish(start_cli(env, "demo", "--json")))
    created = finish(
        start_cli(
            env,
            "clients",
            "create",
            "--client-id",
            "cd33-replicas",
            "--organisation",
            "CD33",
            "--scope",
            RECHERCHE_SCOPES,
            "--rate-limit",
            str(LIMIT),
        )
    )
    secrets = {client["client_id"]: client["client_secret"] for client in demo["clients"]}
    secrets["cd33-replicas"] = created.split("secret : ", 1)[1].split()[0]
    servers = [Server(f"replica-{i}", env, tmp_path / f"replica-{i}.log") for i in range(3)]
    database = Database(database_url)
    try:
        for server in servers:
            server.start()
        # Three apps starting at once on a small shared machine: more time than for one.
        deadline = time.monotonic() + 3 * READY_TIMEOUT
        for server in servers:
            server.wait_ready(deadline)
        yield Cluster(
            servers=servers,
            env=env,
            database=database,
            secrets=secrets,
            numero=demo["usagers"][0]["numeroFranceTravail"],
            shared_limits=redis_url is not None,
        )
    finally:
        for server in servers:
            server.stop()
        database.dispose()


def load(
    cluster: Cluster,
    token: str,
    servers: list[Server],
    *,
    seconds: float,
    during: Callable[[], None] | None = None,
    threads_per_server: int = 2,
) -> list[tuple[Server, httpx.Response]]:
    """Call the servers in closed loops for ``seconds``; ``during`` runs halfway through."""
    answers: list[tuple[Server, httpx.Response]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def loop(server: Server) -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    response = cluster.search(http, server, token)
                except httpx.HTTPError:
                    # A killed replica: nothing was acknowledged, nothing is owed.
                    time.sleep(0.05)
                    continue
                with lock:
                    answers.append((server, response))

    workers = [threading.Thread(target=loop, args=(server,)) for server in servers for _ in range(threads_per_server)]
    for worker in workers:
        worker.start()
    try:
        if during is not None:
            time.sleep(seconds / 2)
            during()
            time.sleep(seconds / 2)
        else:
            time.sleep(seconds)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    return answers


def test_three_replicas_behave_as_one(cluster: Cluster) -> None:
    replicas = cluster.servers

    # 1. One rate limit across the replicas, and one checkpoint per interval meanwhile. ------
    token = cluster.token(replicas[0], "cd33-replicas")
    started = datetime.now(UTC)
    t0 = time.monotonic()
    answers = load(cluster, token, replicas, seconds=5.0)
    elapsed = time.monotonic() - t0
    ended = datetime.now(UTC)
    statuses = [response.status_code for _, response in answers]
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    allowed = statuses.count(200)
    if cluster.shared_limits:
        # One-second windows, back to back while the demand lasts: LIMIT calls a second in all,
        # within 10 % (or one window, for the partial ones at both ends). Counted per process,
        # three replicas would let up to three times as many through.
        expected = LIMIT * elapsed
        assert len(statuses) >= 2 * expected, f"too little load to test the limit: {len(statuses)} calls"
        assert abs(allowed - expected) <= max(0.1 * expected, LIMIT), (allowed, expected, len(statuses))
        assert {server.name for server, response in answers if response.status_code == 200} == {
            server.name for server in replicas
        }

    issued = cluster.checkpoints_between(started, ended)
    # Three replicas each checkpointing would make about three per interval.
    assert 1 <= len(issued) <= math.ceil((ended - started).total_seconds() / CHECKPOINT_INTERVAL) + 1, issued
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(issued, issued[1:], strict=False)]
    assert all(gap >= 0.9 * CHECKPOINT_INTERVAL for gap in gaps), gaps

    # 2. A key rotated on the shared file: tokens it signs open every replica. ---------------
    rotated = finish(start_cli(cluster.env, "keys", "rotate"))
    new_kid = rotated.split("Nouvelle clé de signature : ", 1)[1].split()[0]
    deadline = time.monotonic() + 10
    while True:
        fresh = cluster.token(replicas[0], "demo-cd33")
        if jwt.get_unverified_header(fresh)["kid"] == new_kid:
            break
        assert time.monotonic() < deadline, "replica-0 never signed with the rotated key"
        time.sleep(0.2)
    with httpx.Client(timeout=30) as http:
        for server in replicas:
            response = cluster.search(http, server, fresh)
            assert response.status_code == 200, (server.name, response.text)
        # The old key's tokens stay good for their lifetime.
        assert cluster.search(http, replicas[1], token).status_code in (200, 429)

    # 3. A replica killed under load: every acknowledged call has its audit event. ----------
    victim = replicas[2]
    killed_at = datetime.now(UTC)

    def kill() -> None:
        nonlocal killed_at
        assert victim.process is not None
        killed_at = datetime.now(UTC)
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=10)

    answers = load(cluster, fresh, replicas, seconds=3.0, during=kill)
    acknowledged = [response.headers["x-request-id"] for _, response in answers if 200 <= response.status_code < 300]
    assert any(server is victim and response.status_code == 200 for server, response in answers)
    with cluster.database.engine.connect() as connection:
        recorded = set(
            connection.execute(
                text("SELECT request_id FROM audit_event WHERE request_id = ANY(:ids)"), {"ids": acknowledged}
            ).scalars()
        )
    assert set(acknowledged) <= recorded, f"{len(set(acknowledged) - recorded)} acknowledged calls without an event"

    # The periodic jobs go on in a surviving replica (it takes over a dead leader's lock).
    deadline = time.monotonic() + 10
    while not cluster.checkpoints_between(killed_at, datetime.now(UTC)):
        assert time.monotonic() < deadline, "no checkpoint after the replica was killed"
        time.sleep(0.2)

    verified = start_cli(cluster.env, "audit", "verify")
    finish(verified)


def test_one_process_leads_each_job_and_a_closed_leader_hands_over(database_url: str) -> None:
    first, second = Leadership(database_url), Leadership(database_url)
    try:
        assert first.lead("checkpoints")
        assert not second.lead("checkpoints")
        # Locks are per job: another job may be led elsewhere.
        assert second.lead("detection")
        assert not first.lead("detection")
        # Asked again, the holder keeps it.
        assert first.lead("checkpoints")
        # The leader goes (its connection closes, as when its process dies): the other takes
        # over at one of its next ticks, once PostgreSQL has ended the leader's session.
        first.close()
        deadline = time.monotonic() + 10
        while not second.lead("checkpoints"):
            assert time.monotonic() < deadline, "the lock of a closed leader was never released"
            time.sleep(0.05)
    finally:
        first.close()
        second.close()
