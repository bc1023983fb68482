"""Shared fixtures: a real, migrated database for every test that needs one.

SQLite in the test's own directory by default; the PostgreSQL database named by
``RELAIS_TEST_DATABASE_URL`` when set, its schema dropped and migrated again before each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import text

import habilitations.clients
from relais.core.db import Database, create_db_engine
from relais.migrate import upgrade

TEST_DATABASE_URL_VARIABLE = "RELAIS_TEST_DATABASE_URL"


def _reset_schema(url: str) -> None:
    """Empty the PostgreSQL database: tables, and what migrations create beside them
    (sequences, trigger functions), including tables a later revision dropped."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
            # As a new database's public schema: every role may use it (grants tests rely on it).
            connection.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def cheap_secret_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with its cheapest parameters: the same algorithm and checks, without spending
    a quarter of a second of CPU on every client secret the suite creates or verifies."""
    monkeypatch.setattr(habilitations.clients, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))


def fresh_database_url(directory: Path) -> str:
    """URL of an empty database migrated to the latest revision (SQLite in ``directory``)."""
    url = os.environ.get(TEST_DATABASE_URL_VARIABLE)
    if url:
        _reset_schema(url)
    else:
        url = f"sqlite:///{(directory / 'relais.core.db').as_posix()}"
    upgrade(url)
    return url


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return fresh_database_url(tmp_path)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()
