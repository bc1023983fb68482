"""The migrations test checks what the migrations build: its database is migrated for real,
not copied from the run's template (``real_migration``, see ``tests/support/databases.py``)."""

from __future__ import annotations

import pytest

MIGRATED_FOR_REAL = ("test_migrations.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in MIGRATED_FOR_REAL and item.path.parent.name == "integration":
            item.add_marker(pytest.mark.real_migration)
