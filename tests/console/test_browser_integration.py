"""The integrator in a real headless Chromium: a CSV with errors, all shown at once, fixed, imported;
the connectors' failures with their reason, and a replay. axe-core on every page visited.

See ``tests/console/browser.py`` for the browser, the served app and axe-core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selenium.webdriver.support.ui import Select
from sqlmodel import select

from parcours.tables import RendezVous
from relais.core.outbox import FAILED, OutboxMessage
from tests.adapters.outbound_support import add_connector, publish
from tests.console.browser import BROWSER_MARKS, By, accessible, log_in, submit, text
from tests.support.hub import Hub
from tests.support.people import GIRONDE

pytestmark = BROWSER_MARKS

HEADER = "NIR;NUMERO_FT;NOM;PRENOM;DATE_NAISSANCE;ID_RDV;DATE_RDV;MOTIF;STATUT;DUREE_MINUTES;ORGANISME"


def excel_file(folder: Path, name: str, *lines: str) -> str:
    path = folder / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return str(path)


def test_the_integrator_fixes_a_file_imports_it_and_replays_a_failed_delivery(
    served: tuple[Hub, str], browser: Any, tmp_path: Path
) -> None:
    hub, base = served
    add_connector(hub.services.database, hub.services.keys, "https://solis.example.org/relais")
    publish(hub.services.database, 1)
    with hub.services.database.session() as session:
        failed = session.exec(select(OutboxMessage)).one()
        failed.status, failed.attempts, failed.last_error = FAILED, 2, "délai de réponse dépassé"
        session.add(failed)
        session.commit()
    wrong = excel_file(
        tmp_path,
        "rdv-erreurs.csv",
        HEADER,
        f"{GIRONDE.nir};;;;;NAV-1;15/01/2027 10:30;AUT;Absent;45;CD",
        f"{GIRONDE.nir};;;;;NAV-2;40/01/2027 10:30;AUT;VENU;;CD",
        ";;;;;NAV-3;15/01/2027 11:30;AUT;PRIS;;CD",
    )
    fixed = excel_file(
        tmp_path,
        "rdv-corrige.csv",
        HEADER,
        f"{GIRONDE.nir};;;;;NAV-1;15/01/2027 10:30;AUT;Absent;45;CD",
        f"{GIRONDE.nir};;;;;NAV-2;20/01/2027 10:30;AUT;Effectué;;CD",
    )

    log_in(browser, base, "integrateur-cd33")
    submit(browser, browser.find_element(By.LINK_TEXT, "Connecteurs et imports"))
    accessible(browser)
    page = text(browser)
    assert "solis-cd33" in page and "délai de réponse dépassé" in page

    # The file with errors: every one of them, by line and CSV column, in one table.
    Select(browser.find_element(By.ID, "format")).select_by_value("resultats-rdv")
    browser.find_element(By.ID, "fichier").send_keys(wrong)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.depot button"))
    accessible(browser)
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "table.erreurs-import tbody tr")]
    assert len(rows) == 3, rows
    assert rows[0].startswith("3 DATE_RDV") and rows[1].startswith("3 STATUT") and rows[2].startswith("4 —")
    assert GIRONDE.nir not in text(browser) and not browser.find_elements(By.XPATH, "//button[text()='Importer']")

    # The corrected file: a clean dry run (« Effectué » is read as EFFECTUE), then the import.
    browser.find_element(By.ID, "fichier").send_keys(fixed)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.depot button"))
    accessible(browser)
    assert "Essai à blanc réussi" in text(browser), text(browser)
    submit(browser, browser.find_element(By.XPATH, "//button[text()='Importer']"))
    accessible(browser)
    assert "Import terminé" in text(browser) and "Créées : 2" in text(browser)
    with hub.services.database.session() as session:
        assert sorted(rdv.statut for rdv in session.exec(select(RendezVous))) == ["ABSENT", "EFFECTUE"]

    # The failed delivery, replayed.
    submit(browser, browser.find_element(By.XPATH, "//form[contains(@action, '/rejouer')]//button"))
    accessible(browser)
    assert "remis dans la file" in text(browser)

    # The RGC, without the integrator's role, is refused on the integrator's page.
    log_in(browser, base, "rgc-cd33")
    browser.get(f"{base}/console/integration")
    assert "Action refusée" in text(browser) and "intégrateur de l" in text(browser)
    accessible(browser)
