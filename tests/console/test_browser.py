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

    # RGC: dashboard with the upcoming suspension; create an agent, grant by profile, extend;
    # revoke and grant again; the designations page.
    log_in(browser, base, "rgc-cd33")
    submit(browser, browser.find_element(By.LINK_TEXT, "Habilitations"))
    accessible(browser)
    suspensions = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby='titre-suspensions']").text
    assert "Agent AGT-7" in suspensions and due.strftime("%d/%m/%Y") in suspensions

    submit(browser, browser.find_element(By.LINK_TEXT, "Créer un agent"))
    accessible(browser)
    for field, value in (
        ("identifiant", "AGT-NAV"),
        ("nom", "Moreau"),
        ("prenom", "Inès"),
        ("email", "ines.moreau@gironde.fr"),
    ):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#statut_emploi option[value='contractuel']").click()
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.formulaire button"))
    assert "Agent créé : Inès Moreau" in text(browser)
    accessible(browser)
    form = browser.find_element(By.XPATH, "//form[input[@name='api' and @value='rechercher-usager-v2']]")
    form.find_element(By.CSS_SELECTOR, "input[value='RechercherUsagerParDateNaissanceEtNir']").click()  # untick one
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    assert "Habilitation accordée : Inès Moreau peut désormais appeler « Rechercher usager v2 »" in text(browser)
    accessible(browser)
    granted = browser.find_element(By.XPATH, "//tr[td[1][contains(., 'rechercher-usager-v2')]]")
    assert "Rechercher un usager par numéro France Travail" in granted.text
    end = hub.clock.today() + timedelta(days=180)
    # The date picker's typing order follows the browser's locale: set its value as a pick would.
    date_field = granted.find_element(By.CSS_SELECTOR, "input[type=date]")
    browser.execute_script("arguments[0].value = arguments[1]", date_field, end.isoformat())
    submit(browser, granted.find_element(By.XPATH, ".//button[contains(., 'Prolonger ou raccourcir')]"))
    assert f"elle prendra fin le {end.strftime('%d/%m/%Y')}" in text(browser)
    accessible(browser)

    browser.get(f"{base}/console/habilitations")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby='titre-suspensions'] a"))
    accessible(browser)
    revoke = browser.find_element(
        By.XPATH, "//tr[td[1][contains(., 'rechercher-usager-v2')]]//button[normalize-space()='Révoquer']"
    )
    submit(browser, revoke)
    assert "Habilitation révoquée : Agent AGT-7 ne peut plus appeler" in text(browser)
    accessible(browser)
    form = browser.find_element(By.XPATH, "//form[input[@name='api' and @value='rechercher-usager-v2']]")
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    assert "Habilitation accordée" in text(browser)

    browser.get(f"{base}/console/habilitations")
    submit(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Désignations"))
    assert "RGC titulaire" in text(browser)
    accessible(browser)

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
    refusals = (
        ("/console/habilitations", "Consultation réservée"),
        ("/console/habilitations/agents/nouveau", "Action réservée"),
        ("/console/habilitations/designations", "Consultation réservée"),
        ("/console/campagnes", "Consultation réservée"),
        ("/console/audit", "Réservé au RSSI"),
        ("/console/incidents", "Réservé au RSSI"),
        ("/console/integrite", "Réservé au RSSI"),
    )
    for path, message in refusals:
        browser.get(f"{base}{path}")
        assert "Action refusée" in text(browser) and message in text(browser)
        accessible(browser)
