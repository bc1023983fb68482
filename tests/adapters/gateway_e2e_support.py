"""Real ``relais`` processes for the two-process gateway test: start, wait, call, stop.

Everything runs on loopback, on ports the OS hands out, with bounded waits: a server that does
not answer ``/healthz`` in time fails the test with its log, and every process started is
stopped by the fixture's finaliser whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-c", "from relais.cli.main import main; main()"]
READY_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0
AGENT = {"pa-nom-agent": "Martin", "pa-prenom-agent": "Claire", "pa-identifiant-agent": "AGT-0042"}
TOKEN_PATH = "/connexion/oauth2/access_token"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def relais_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``relais`` process: this run's, minus any Relais setting, plus ours."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("RELAIS_")}
    # Development keys in the data directory, on PostgreSQL too (where they are not by default).
    env.update({"RELAIS_DATA_DIR": str(data_dir), "RELAIS_LOG_LEVEL": "WARNING", "RELAIS_GENERATE_DEV_KEYS": "true"})
    env.update(settings)
    return env


def start_cli(env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [*CLI, *args], env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for a CLI command; its standard output, or a failure with its error output."""
    try:
        out, err = process.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, f"relais {process.args!r} -> {process.returncode}\n{err[-2000:]}"
    return out


@dataclass
class Server:
    """One ``relais serve`` process."""

    name: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [*CLI, "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.failure("exited")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(self.failure("not ready in time"))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def failure(self, what: str) -> str:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"{self.name} {what}\n{tail}"


@dataclass
class Side:
    """A département's software calling one Relais: its tokens and the jetons it obtained."""

    http: httpx.Client
    secrets: dict[str, str]
    scopes: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    jetons: dict[tuple[str, str], str] = field(default_factory=dict)

    def token(self, client_id: str) -> str:
        if client_id not in self.tokens:
            response = self.http.post(
                TOKEN_PATH,
                params={"realm": "/agent"},
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": self.secrets[client_id],
                    "scope": self.scopes[client_id],
                },
            )
            assert response.status_code == 200, response.text
            self.tokens[client_id] = response.json()["access_token"]
        return self.tokens[client_id]

    def call(
        self,
        method: str,
        path: str,
        *,
        client: str,
        usager: str | None = None,
        jeton: str | None = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(client)}", **AGENT}
        jeton = jeton or (self.jetons[(client, usager)] if usager else None)
        if jeton is not None:
            headers["ft-jeton-usager"] = jeton
        return self.http.request(method, path, headers=headers, json=json, params=params)


# What legitimately differs between two Relais serving the same data: their jetons (each
# encrypts its own), the ids and the instants they generate.
VOLATILE_KEYS = {"jetonUsager"}
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_GENERATED_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^[A-Za-z0-9_-]{22,}$")


def comparable(value: Any) -> Any:
    """``value`` with what two Relais may legitimately answer differently masked."""
    if isinstance(value, dict):
        return {key: "<jeton>" if key in VOLATILE_KEYS else comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, str) and _INSTANT.match(value):
        return "<instant>"
    if isinstance(value, str) and _GENERATED_ID.match(value):
        return "<id>"
    return value


def body_of(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except json.JSONDecodeError:
        return response.text
