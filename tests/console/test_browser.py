"""The console in a real headless Chromium: each role's login and main task, end to end.

Debian's ``chromium`` and ``chromium-driver`` (``scripts/test`` installs them when it can);
without them these tests are skipped, saying why. Every page visited is checked with
axe-core: no serious or critical accessibility violation. The app is the test hub's, served
over loopback by uvicorn in a thread, on a fresh copy of the test dataset.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlmodel import select

from habilitations.inactivity import inactivity_due_date
from habilitations.models import Agent
from tests.support.hub import Hub
from tests.support.people import GIRONDE

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

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
axe_module = pytest.importorskip("axe_selenium_python", reason="axe-selenium-python is not installed")
pytestmark = [
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
By = pytest.importorskip("selenium.webdriver.common.by").By
WebDriverWait = pytest.importorskip("selenium.webdriver.support.ui").WebDriverWait
staleness_of = pytest.importorskip("selenium.webdriver.support.expected_conditions").staleness_of


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
    axe = axe_module.Axe(driver)
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
    WebDriverWait(driver, 15).until(staleness_of(element))


def text(driver: Any) -> str:
    return str(driver.find_element(By.TAG_NAME, "main").text)


def test_each_role_does_its_main_task_in_a_real_browser(served: tuple[Hub, str], browser: Any) -> None:
    hub, base = served
    # An agent last active 50 days ago: suspended in about ten days, as the RGC must see.
    with hub.services.database.transaction() as session:
        idle = session.exec(select(Agent).where(Agent.identifiant == "AGT-7")).one()
        idle.derniere_activite = hub.clock.now - timedelta(days=50)
        session.add(idle)
        due = inactivity_due_date(idle)

    # RGC: dashboard, upcoming suspension, revoke then grant by profile.
    log_in(browser, base, "rgc-cd33")
    submit(browser, browser.find_element(By.LINK_TEXT, "Habilitations"))
    accessible(browser)
    suspensions = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby='titre-suspensions']").text
    assert "Agent AGT-7" in suspensions and due.strftime("%d/%m/%Y") in suspensions
    submit(browser, browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby='titre-suspensions'] a"))
    accessible(browser)
    revoke = browser.find_element(By.XPATH, "//tr[td[1][normalize-space()='rechercher-usager-v2']]//button")
    submit(browser, revoke)
    assert "Habilitation révoquée." in text(browser)
    accessible(browser)
    form = browser.find_element(By.XPATH, "//form[input[@name='api' and @value='rechercher-usager-v2']]")
    form.find_element(By.CSS_SELECTOR, "input[value='RechercherUsagerParDateNaissanceEtNir']").click()  # untick one
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    assert "Habilitation accordée." in text(browser)

    # RSSI: who consulted a usager in the last 30 days (a partner call made just before).
    hub.client.post(
        "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=hub.headers(hub.token("cd33")),
    )
    log_in(browser, base, "rssi-cd33")
    submit(browser, browser.find_element(By.LINK_TEXT, "Journal d'audit"))
    accessible(browser)
    browser.find_element(By.ID, "valeur").send_keys(GIRONDE.numero)
    browser.find_element(By.ID, "periode-30").click()
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.recherche button"))
    results = text(browser)
    assert "Rechercher un usager par numéro France Travail" in results, results
    assert GIRONDE.numero not in browser.current_url and browser.current_url.endswith("/console/audit")
    accessible(browser)

    # Integrator: no administration role, refused on the RGC's and the RSSI's pages.
    log_in(browser, base, "integrateur-cd33")
    for path, message in (("/console/habilitations", "Consultation réservée"), ("/console/audit", "Réservé au RSSI")):
        browser.get(f"{base}{path}")
        assert "Action refusée" in text(browser) and message in text(browser)
        accessible(browser)
