"""The console's tests: the hub with demo personas enabled and a cookie jar of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.console.browser import browser, chromium, served  # noqa: F401  (fixtures of the browser tests)
from tests.support.hub import Hub


@pytest.fixture
def console(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.setenv("RELAIS_CONSOLE_PERSONAS", "1")
    hub.client.cookies.clear()
    yield hub
    hub.client.cookies.clear()
