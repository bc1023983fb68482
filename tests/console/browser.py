"""Real-browser support for the console's tests: the served app, Chromium, axe-core, helpers.

Debian's ``chromium`` and ``chromium-driver`` (``scripts/test`` installs them when it can);
without them the browser tests are skipped, saying why. Every page a test visits should be
checked with ``accessible``: no serious or critical accessibility violation. The app is the
test hub's, served over loopback by uvicorn in a thread, on a fresh copy of the test dataset.

A browser test module imports the helpers it uses from here, sets
``pytestmark = BROWSER_MARKS`` and takes the ``served`` and ``browser`` fixtures (registered
by ``tests/console/conftest.py``). One Chromium serves the run; each test gets it emptied of
cookies, cache, storage and tabs, as a new one would be.
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
from urllib.parse import urlsplit

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


def _launch() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(20)
    return driver


class _Chromium:
    """The run's one Chromium (launching one costs about a second, more on a busy machine),
    handed to each test as a browser that remembers nothing of the previous test."""

    def __init__(self) -> None:
        self.driver: Any = None

    def fresh(self) -> Any:
        if self.driver is not None:
            try:
                self._forget(self.driver)
            except WebDriverException:
                # A test left the browser unusable (crashed tab, dead session): a new one.
                self.close()
        if self.driver is None:
            self.driver = _launch()
        return self.driver

    @staticmethod
    def _forget(driver: Any) -> None:
        """What a new browser would not have: other tabs, the storage of the site the last
        test left it on, cookies (a cookie ignores the port, so it would reach the next
        test's server), cache, the download folder."""
        for handle in driver.window_handles[1:]:
            driver.switch_to.window(handle)
            driver.close()
        driver.switch_to.window(driver.window_handles[0])
        left = urlsplit(str(driver.current_url))
        if left.scheme in ("http", "https"):
            origin = f"{left.scheme}://{left.netloc}"
            driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
        driver.get("about:blank")
        driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "default"})

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None


@pytest.fixture(scope="session")
def chromium() -> Iterator[_Chromium]:
    holder = _Chromium()
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture
def browser(chromium: _Chromium) -> Any:
    """A browser as new for this test: the run's Chromium, emptied of what earlier tests left."""
    return chromium.fresh()


# axe-core's script, read once for the run (half a megabyte, injected into every page checked).
AXE_SCRIPT = Path(Axe(None).script_url).read_text(encoding="utf-8")
# Every rule runs and every violating node is reported; ``resultTypes`` only spares axe
# describing each passing and inapplicable node, and only the violations come back over the
# driver: a third of each check's time, and nothing the assertion reads.
_AXE_VIOLATIONS = (
    "const done = arguments[arguments.length - 1];"
    "axe.run(document, {resultTypes: ['violations']}).then(results => done(results.violations));"
)


def accessible(driver: Any) -> None:
    """axe-core on the current page: no serious or critical violation."""
    driver.execute_script(AXE_SCRIPT)
    violations = driver.execute_async_script(_AXE_VIOLATIONS)
    bad = [
        f"{violation['id']}: {violation['help']} ({len(violation['nodes'])})"
        for violation in violations
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
