"""The console in a real headless Chromium: the RGC's and the RSSI's first tasks, and refusals.

See ``tests/console/browser.py`` for the browser, the served app and axe-core.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

from habilitations.inactivity import inactivity_due_date
from habilitations.models import Agent
from tests.console.browser import BROWSER_MARKS, By, accessible, log_in, submit, text
from tests.support.hub import Hub
from tests.support.people import GIRONDE

pytestmark = BROWSER_MARKS


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
