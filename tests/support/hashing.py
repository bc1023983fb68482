"""Client secrets hashed with argon2's cheapest parameters in tests.

The same algorithm and checks, without spending a quarter of a second of CPU on every client
secret the suite creates or verifies (a hash carries its parameters: verifying needs no patch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from argon2 import PasswordHasher, profiles

import habilitations.clients


def cheapest_hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(profiles.CHEAPEST)


@contextmanager
def cheap_hashing() -> Iterator[None]:
    """For work done outside a test's own fixtures (templates built once per run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(habilitations.clients, "_hasher", cheapest_hasher())
        yield


@pytest.fixture(autouse=True)
def cheap_secret_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(habilitations.clients, "_hasher", cheapest_hasher())
