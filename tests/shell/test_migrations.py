"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from relais.core.db import create_db_engine
from relais.schema import metadata

# What the migrations build is the point here: migrate for real, not a copy of the run's template.
pytestmark = pytest.mark.real_migration


def test_migrated_database_matches_the_models(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # A model changed without its migration (or the reverse): write the revision.
    assert differences == []
