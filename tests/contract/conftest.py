"""Reuse the end-to-end hub (real app, real database) for the contract tests."""

from tests.e2e.conftest import hub, hub_app  # noqa: F401
