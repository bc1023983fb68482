"""Real-browser support for the console's tests: the served app, Chromium, axe-core, helpers.

Debian's ``chromium`` and ``chromium-driver`` (``scripts/test`` installs them when it can);
without them the browser tests are skipped, saying why. Every page a test visits should be
checked with ``accessible``: no serious or critical accessibility violation. The app is the
test hub's, served over loopback by uvicorn in a thread, on a fresh copy of the test dataset.

A browser test module imports the helpers it uses from here, sets
``pytestmark = BROWSER_MARKS`` and takes the ``served`` and ``browser`` fixtures (registered
by ``tests/console/conftest.py``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from axe_selenium_python import Axe
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.hub import Hub

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)

BROWSER_MARKS = [
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
        reason="Chromium or chromedriver missing (apt-get install chromium chromium-driver): browser tests skipped",
    ),
    # The pages are the same on both engines (test_console.py runs on both): one browser at a
    # time on the 2-core CI machine, where scripts/test runs the two engines side by side.
    pytest.mark.skipif(
        os.environ.get("RELAIS_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="browser tests run on the SQLite pass only",
    ),
]


@pytest.fixture
def served(console: Hub) -> Iterator[tuple[Hub, str]]:
    """The hub's app on a loopback port, for the browser."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(console.client.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the console server did not start"
    try:
        yield console, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def accessible(driver: Any) -> None:
    """axe-core on the current page: no serious or critical violation."""
    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    bad = [
        f"{violation['id']}: {violation['help']} ({len(violation['nodes'])})"
        for violation in results["violations"]
        if violation.get("impact") in ("serious", "critical")
    ]
    assert not bad, f"{driver.current_url}: {bad}"


def log_in(driver: Any, base: str, persona: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/")
    assert driver.current_url.endswith("/console/connexion")
    accessible(driver)
    submit(driver, driver.find_element(By.CSS_SELECTOR, f"button[value='{persona}']"))
    assert driver.current_url.endswith("/console/"), driver.current_url
    accessible(driver)


def submit(driver: Any, element: Any) -> None:
    """Click and wait for the next page (the clicked element goes stale when it arrives)."""
    element.click()
    WebDriverWait(driver, 15).until(lambda _: _gone(element))


def _gone(element: Any) -> bool:
    # Chromium may answer "Node with given id does not belong to the document" instead of a
    # stale reference while the next page replaces the old one: both mean the page moved on.
    try:
        return bool(staleness_of(element)(None))
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise


def text(driver: Any) -> str:
    return str(driver.find_element(By.TAG_NAME, "main").text)
