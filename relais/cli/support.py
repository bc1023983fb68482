"""What every ``relais`` subcommand needs: errors, migrating first, keys and the database.

Shared by ``relais.cli.main`` and the command groups of the other packages (habilitations,
audit, connectors, files), so that each command fails, migrates and opens the database the
same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from relais.core.config import Settings
from relais.core.db import Database
from relais.core.keys import KeySet, KeySetError, load_or_create_keyset
from relais.migrate import upgrade


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"Erreur : {message}", err=True)
    sys.exit(code)


def redact_database_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def migrate_database(settings: Settings) -> str:
    """Bring the database to the latest revision; return its URL without password."""
    url = settings.resolved_database_url
    try:
        upgrade(url)
    except SQLAlchemyError as exc:
        # The driver's message may quote the URL; only the redacted form is shown.
        fail(f"migration impossible sur {redact_database_url(url)} ({type(exc).__name__})")
    return redact_database_url(url)


def load_keys(settings: Settings) -> KeySet:
    try:
        return load_or_create_keyset(settings)
    except KeySetError as exc:
        fail(str(exc))


@contextmanager
def open_database(settings: Settings) -> Iterator[Database]:
    db = Database(settings.resolved_database_url)
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def migrated_database(settings: Settings) -> Iterator[Database]:
    """The database brought to the latest revision first, as every command wants it."""
    migrate_database(settings)
    with open_database(settings) as db:
        yield db
