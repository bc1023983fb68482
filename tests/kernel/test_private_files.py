"""The embedded database and its WAL and SHM files are readable by Relais' user only
(issue 14 finding 9): names, addresses and birth dates are in there."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from relais.core.db import Database


@pytest.fixture
def usual_umask() -> Iterator[None]:
    # The umask most servers run with: without care, files come out 0644 and directories 0755.
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_wal_and_shm_are_0600_in_a_0700_directory(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "data" / "relais.db"
    database = Database(f"sqlite:///{path.as_posix()}")
    try:
        with database.transaction() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        # The connection is still open (pooled): the WAL and SHM files exist now.
        files = [path, path.with_name("relais.db-wal"), path.with_name("relais.db-shm")]
        assert all(file.exists() for file in files)
        assert {file.name: _mode(file) for file in files} == {file.name: 0o600 for file in files}
        assert _mode(path.parent) == 0o700
    finally:
        database.dispose()


def test_an_existing_readable_database_is_tightened(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "relais.db"
    Database(f"sqlite:///{path.as_posix()}").dispose()
    path.chmod(0o644)
    database = Database(f"sqlite:///{path.as_posix()}")
    try:
        with database.transaction() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        assert _mode(path) == 0o600
    finally:
        database.dispose()


def test_the_journal_signing_key_directory_is_private_when_it_comes_first(tmp_path: Path, usual_umask: None) -> None:
    # A checkpoint can run before the keys file and the database exist: its directory is 0700 too.
    from audit.checkpoints import load_or_create_signing_key

    key_file = tmp_path / "donnees" / "audit-signing-key.pem"
    load_or_create_signing_key(key_file)
    assert _mode(key_file.parent) == 0o700 and _mode(key_file) == 0o600
