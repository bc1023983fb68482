"""The test kit as a pytest plugin (registered by ``tests/conftest.py``): its fixture modules."""

from __future__ import annotations

pytest_plugins = [
    "tests.support.hashing",
    "tests.support.databases",
    "tests.support.hub",
]
