"""``relais serve --workers N``: several server processes on PostgreSQL, refused on SQLite;
the banner says where rate limits are counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from relais.cli.main import main
from relais.core.config import get_settings
from tests.shell.test_cli import restore_logging  # noqa: F401  (serve configures logging: undone after)
from tests.support.databases import server_url


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_DATABASE_URL", database_url)
    monkeypatch.setenv("RELAIS_GENERATE_DEV_KEYS", "true")
    monkeypatch.delenv("RELAIS_REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    # The server itself is not started: its arguments are recorded instead.
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    return calls


@pytest.mark.usefixtures("env")
def test_several_workers(uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAIS_REDIS_URL", "redis://:secret-pw@127.0.0.1:6379/3")
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["serve", "--port", "8123", "--workers", "3"])

    if server_url() is None:
        # SQLite: one writer at a time, so no second process; nothing started.
        assert result.exit_code == 1
        assert "PostgreSQL" in result.stderr and "--workers 1" in result.stderr
        assert uvicorn_calls == []
        return
    assert result.exit_code == 0, result.output
    # Each worker process builds its own app from the environment, as `relais serve` runs it.
    assert uvicorn_calls == [
        {
            "app": "api.app:create_served_app",
            "factory": True,
            "host": "127.0.0.1",
            "port": 8123,
            "workers": 3,
            "log_config": None,
        }
    ]
    assert "Processus serveurs : 3" in result.stdout
    assert "partagées entre processus et répliques (Redis redis://:***@127.0.0.1:6379/3)" in result.stdout
    assert "secret-pw" not in result.output


@pytest.mark.usefixtures("env", "restore_logging")
def test_one_worker_says_limits_are_per_process(uvicorn_calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "8124"])

    assert result.exit_code == 0, result.output
    assert "Limites de débit : comptées par processus" in result.stdout
    assert len(uvicorn_calls) == 1 and "workers" not in uvicorn_calls[0]
