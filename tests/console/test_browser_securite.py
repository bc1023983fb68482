"""The RSSI's main task in a real headless Chromium: search a usager's last 30 days (a refusal
among the results), download the citizen's letter, move an incident to NOTIFIE with its
countdown shown, check the journal; an integrator is refused on each of these pages.

See ``tests/console/browser.py`` for the browser, the served app and axe-core.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.audit.audit_api_support import read_file
from tests.console.browser import BROWSER_MARKS, By, accessible, log_in, submit, text
from tests.console.test_securite import incident_of_cd33, refused_call_on
from tests.support.hub import Hub
from tests.support.people import GIRONDE

pytestmark = BROWSER_MARKS


def _downloaded(folder: Path, suffix: str) -> Path:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = [path for path in folder.iterdir() if path.name.endswith(suffix)]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded in {folder}: {list(folder.iterdir())}")


def test_the_rssi_searches_downloads_the_letter_and_notifies_an_incident(
    served: tuple[Hub, str], browser: Any, tmp_path: Path
) -> None:
    hub, base = served
    incident = incident_of_cd33(hub)
    refused_call_on(hub, GIRONDE.numero)
    read_file(hub, GIRONDE)
    hub.clock.now += timedelta(hours=16, minutes=48)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})

    # The last 30 days of one usager: the refusal is there, in plain words.
    log_in(browser, base, "rssi-cd33")
    submit(browser, browser.find_element(By.LINK_TEXT, "Journal d'audit"))
    accessible(browser)
    browser.find_element(By.ID, "valeur").send_keys(GIRONDE.numero)
    browser.find_element(By.ID, "periode-30").click()
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.recherche button"))
    results = text(browser)
    assert "Refusé" in results and "L'agent n'a pas d'habilitation pour ce service" in results, results
    assert GIRONDE.numero not in browser.current_url and GIRONDE.numero not in browser.page_source
    accessible(browser)

    # The citizen's letter, downloaded by a POST (nothing of the usager in any address).
    browser.find_element(By.XPATH, "//button[contains(., 'Qui a consulté mon dossier')]").click()
    letter = _downloaded(tmp_path, ".pdf")
    assert letter.read_bytes().startswith(b"%PDF")
    browser.find_element(By.XPATH, "//button[contains(., 'Exporter ces résultats')]").click()
    exported = _downloaded(tmp_path, ".csv")
    assert exported.read_bytes().startswith("\ufeffDate et heure (Paris);".encode())

    # The incidents board: the countdown, then qualify and notify the incident.
    submit(browser, browser.find_element(By.LINK_TEXT, "Incidents"))
    assert "reste 31 h 12 min" in text(browser), text(browser)
    accessible(browser)
    submit(browser, browser.find_element(By.CSS_SELECTOR, f"a[href='/console/incidents/{incident}']"))
    assert "reste 31 h 12 min" in text(browser)
    accessible(browser)
    for action, comment in (("QUALIFIE", "Lecture en masse confirmée"), ("NOTIFIE", "DPO informé par courriel")):
        browser.find_element(By.ID, f"etat-{action}").click()
        browser.find_element(By.ID, "commentaire").send_keys(comment)
        submit(browser, browser.find_element(By.XPATH, "//button[contains(., 'changement d')]"))
        assert "État de l'incident modifié." in text(browser) and comment in text(browser)
        accessible(browser)
    browser.find_element(By.ID, "destinataire").send_keys("CSSI France Travail")
    submit(browser, browser.find_element(By.XPATH, "//button[contains(., 'Ajouter la notification')]"))
    assert "notifié : CSSI France Travail, le" in text(browser)
    accessible(browser)
    submit(browser, browser.find_element(By.LINK_TEXT, "Retour au tableau des incidents"))
    assert "Notifié" in text(browser)

    # The journal's integrity, verified on demand.
    submit(browser, browser.find_element(By.LINK_TEXT, "Intégrité du journal"))
    accessible(browser)
    submit(browser, browser.find_element(By.XPATH, "//button[contains(., 'Vérifier le journal')]"))
    assert "Vérification réussie" in text(browser)
    accessible(browser)

    # An integrator is refused on each of the security officer's pages.
    log_in(browser, base, "integrateur-cd33")
    for path in ("/console/audit", "/console/incidents", f"/console/incidents/{incident}", "/console/integrite"):
        browser.get(f"{base}{path}")
        assert "Action refusée" in text(browser) and "Réservé au RSSI" in text(browser), path
        accessible(browser)
