"""A real, migrated database for every test that needs one, copied from a template.

Migrating takes 0.2 to 2 seconds a database, copying one a few milliseconds: the migrations
run once per run into a template (per engine), and each test gets its own copy of it.

- SQLite (the default): the template is a file, copied into the test's own directory.
- PostgreSQL (``RELAIS_TEST_DATABASE_URL`` set): the template is a database on that server,
  and each test gets ``CREATE DATABASE <copy> TEMPLATE <template>``, dropped after the test.
  The databases the kit creates are named after the URL's database, ``<name>_k<pid>_...``;
  the URL's database itself is left to the tests that migrate it step by step.

A test marked ``real_migration`` gets an empty database migrated for real instead of a copy.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from relais.core.db import Database, create_db_engine
from relais.migrate import upgrade

TEST_DATABASE_URL_VARIABLE = "RELAIS_TEST_DATABASE_URL"
# The file name the suite always gave a test's SQLite database.
DATABASE_FILE = "relais.core.db"
# The template every other one starts from: the schema at the latest revision.
MIGRATED = "migrated"
# PostgreSQL's limit on identifiers: longer database names are cut silently, so refuse them.
_MAX_NAME = 63

Build = Callable[[str], None]


def server_url() -> str | None:
    """The PostgreSQL URL the suite runs on, or None for SQLite."""
    return os.environ.get(TEST_DATABASE_URL_VARIABLE) or None


def reset_schema(url: str) -> None:
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


def fresh_database_url(directory: Path) -> str:
    """URL of an empty database migrated for real to the latest revision (SQLite in
    ``directory``; on PostgreSQL, the URL's own database, its schema dropped first).

    The former way every test got its database; the fixtures copy a template instead.
    """
    url = server_url()
    if url:
        reset_schema(url)
    else:
        url = f"sqlite:///{(directory / DATABASE_FILE).as_posix()}"
    upgrade(url)
    return url


class Templates(ABC):
    """Databases built once per run (``ensure``) and copied for each test (``copy``)."""

    def __init__(self) -> None:
        self._built: set[str] = set()

    def ensure(self, name: str, build: Build, *, base: str | None = None) -> str:
        """Build the template ``name`` unless it exists: ``build`` runs on an empty database,
        or on a copy of the template ``base``. Returns ``name``."""
        if name not in self._built:
            url = self._create_template(name, base)
            build(url)
            self._seal(url)
            self._built.add(name)
        return name

    def migrated(self) -> str:
        """The template at the latest revision, migrated for real on first use."""
        return self.ensure(MIGRATED, upgrade)

    @abstractmethod
    def copy(self, template: str, directory: Path) -> str:
        """URL of a new database holding what the template ``template`` holds."""

    @abstractmethod
    def empty(self, directory: Path) -> str:
        """URL of a new, empty database (for tests that migrate it themselves)."""

    @abstractmethod
    def drop(self, url: str) -> None:
        """Forget a database ``copy`` or ``empty`` made."""

    @abstractmethod
    def close(self) -> None:
        """Remove the templates and whatever is left of the copies."""

    @abstractmethod
    def _create_template(self, name: str, base: str | None) -> str:
        """A new database for the template ``name``: empty, or a copy of ``base``."""

    @abstractmethod
    def _seal(self, url: str) -> None:
        """Make the template ready to be copied."""


class SqliteTemplates(Templates):
    """Template files in a directory of the run, copied byte for byte."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.db"

    def _create_template(self, name: str, base: str | None) -> str:
        path = self._path(name)
        # What a build that failed half-way left (the next test tries again).
        path.unlink(missing_ok=True)
        if base is not None:
            shutil.copyfile(self._path(base), path)
        return _sqlite_url(path)

    def _seal(self, url: str) -> None:
        # The databases run in WAL mode: fold the log into the main file, so that the file
        # alone is the whole database (the last connection's close removes the empty log).
        path = make_url(url).database
        assert path is not None
        connection = sqlite3.connect(path)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        for suffix in ("-wal", "-shm"):
            leftover = Path(path + suffix)
            if leftover.exists() and leftover.stat().st_size:
                raise RuntimeError(f"template {path} still has a write-ahead log: is a connection open?")

    def copy(self, template: str, directory: Path) -> str:
        path = directory / DATABASE_FILE
        shutil.copyfile(self._path(template), path)
        return _sqlite_url(path)

    def empty(self, directory: Path) -> str:
        return _sqlite_url(directory / DATABASE_FILE)

    def drop(self, url: str) -> None:
        """Nothing to do: the file goes with the test's directory (pytest keeps the last runs')."""

    def close(self) -> None:
        """Nothing to do: the templates go with the run's directory."""


class PostgresTemplates(Templates):
    """Template databases on the test server, copied with ``CREATE DATABASE ... TEMPLATE``."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = make_url(url)
        base = self.url.database
        if not base:
            raise ValueError(f"{TEST_DATABASE_URL_VARIABLE} names no database: {url}")
        # The process id keeps two runs on one server apart and lets a later run recognise
        # what a killed one left behind.
        self.prefix = f"{base}_k{os.getpid()}_"
        self._stale = re.compile(re.escape(base) + r"_k(\d+)_")
        self._numbers = itertools.count(1)
        self._copies: set[str] = set()
        self._admin = psycopg.connect(_libpq_url(url), autocommit=True)
        self._drop_left_behind()

    def _url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def _name(self, suffix: str) -> str:
        name = f"{self.prefix}{suffix}"
        if len(name) > _MAX_NAME:
            raise ValueError(f"database name too long for PostgreSQL: {name}")
        return name

    def _create(self, name: str, template: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(self._name(f"t_{template}")))
        self._admin.execute(statement)

    def _drop(self, name: str) -> None:
        # FORCE ends connections a test left open (an engine not disposed, a killed worker).
        self._admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _create_template(self, name: str, base: str | None) -> str:
        database = self._name(f"t_{name}")
        self._drop(database)
        self._create(database, base)
        url = self._url_of(database)
        if base is None:
            # The schema exactly as the suite always migrated it (see ``reset_schema``).
            reset_schema(url)
        return url

    def _seal(self, url: str) -> None:
        # A database is copied only while nobody is connected to it: end what a build left
        # open (its engines are disposed, but a pool may keep a connection a moment longer).
        self._admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (make_url(url).database,),
        )

    def copy(self, template: str, directory: Path) -> str:
        name = self._name(str(next(self._numbers)))
        self._create(name, template)
        self._copies.add(name)
        return self._url_of(name)

    def empty(self, directory: Path) -> str:
        name = self._name(str(next(self._numbers)))
        self._create(name)
        self._copies.add(name)
        url = self._url_of(name)
        reset_schema(url)
        return url

    def drop(self, url: str) -> None:
        name = make_url(url).database
        if name in self._copies:
            self._drop(name)
            self._copies.discard(name)

    def close(self) -> None:
        try:
            for name in sorted(self._copies):
                self._drop(name)
            for template in sorted(self._built):
                self._drop(self._name(f"t_{template}"))
        finally:
            self._admin.close()

    def _drop_left_behind(self) -> None:
        """Drop the databases of earlier runs on this machine whose process is gone."""
        rows = self._admin.execute("SELECT datname FROM pg_database").fetchall()
        for (name,) in rows:
            match = self._stale.match(name)
            if match and not _alive(int(match.group(1))):
                self._drop(name)


def open_templates(directory: Path) -> Templates:
    url = server_url()
    return PostgresTemplates(url) if url else SqliteTemplates(directory)


class OwnDatabase:
    """One test's database, made when first asked for: a copy of the migrated template, or of
    the dataset template when the hub asks first. ``database_url`` and ``hub`` in one test
    share it, as they always did."""

    def __init__(self, templates: Templates, directory: Path, *, real_migration: bool = False) -> None:
        self.templates = templates
        self.directory = directory
        self.real_migration = real_migration
        self.url: str | None = None
        self.has_dataset = False

    def migrated(self) -> str:
        if self.url is None:
            if self.real_migration:
                self.url = self.templates.empty(self.directory)
                upgrade(self.url)
            else:
                self.url = self.templates.copy(self.templates.migrated(), self.directory)
        return self.url

    def with_dataset(self, template: str, import_dataset: Build) -> str:
        """The database with the test dataset: a copy of ``template`` if nothing was made
        yet, else the dataset imported into the database already handed out."""
        if self.url is None:
            self.url = self.templates.copy(template, self.directory)
        elif not self.has_dataset:
            import_dataset(self.url)
        self.has_dataset = True
        return self.url

    def release(self) -> None:
        if self.url is not None:
            self.templates.drop(self.url)


@pytest.fixture(scope="session")
def database_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    templates = open_templates(tmp_path_factory.mktemp("templates"))
    try:
        yield templates
    finally:
        templates.close()


@pytest.fixture
def own_database(
    database_templates: Templates, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OwnDatabase]:
    real = request.node.get_closest_marker("real_migration") is not None
    database = OwnDatabase(database_templates, tmp_path, real_migration=real)
    yield database
    database.release()


@pytest.fixture
def database_url(own_database: OwnDatabase) -> str:
    """URL of this test's own database, migrated to the latest revision."""
    return own_database.migrated()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.as_posix()}"


def _libpq_url(url: str) -> str:
    """The URL as libpq reads it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
