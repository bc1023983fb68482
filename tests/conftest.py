"""The test kit (``tests/support``) for every test: a migrated database of its own, copied
from a template migrated once per run (SQLite in the test's own directory by default; on the
server named by ``RELAIS_TEST_DATABASE_URL`` when set), and the hub on the test dataset.

The names below stay importable from here for the tests that migrate step by step.
"""

from __future__ import annotations

import pytest

# Before the first import of the kit: its helpers' asserts then explain themselves, as the
# conftest they come from did.
pytest.register_assert_rewrite("tests.support")

from tests.support.databases import TEST_DATABASE_URL_VARIABLE, fresh_database_url, reset_schema  # noqa: E402

pytest_plugins = ["tests.support.plugin"]

_reset_schema = reset_schema

__all__ = ["TEST_DATABASE_URL_VARIABLE", "_reset_schema", "fresh_database_url"]
