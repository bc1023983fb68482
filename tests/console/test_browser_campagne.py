"""The RGC's yearly review in a real headless Chromium: a 3-agent campaign, one bulk decision,
one line on its own, the draft, the closure, and both reports downloaded by the browser.

See ``tests/console/browser.py`` for the browser, the served app and axe-core.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.console.browser import BROWSER_MARKS, By, accessible, log_in, submit, text
from tests.support.hub import Hub

pytestmark = BROWSER_MARKS


def downloaded(folder: Path, suffix: str, before: set[Path]) -> Path:
    """The file the browser has just finished saving in ``folder``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = [path for path in folder.glob(f"*{suffix}") if path not in before]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded in {folder}: {list(folder.iterdir())}")


def download(browser: Any, folder: Path, link_text: str, suffix: str) -> bytes:
    before = set(folder.iterdir())
    browser.find_element(By.PARTIAL_LINK_TEXT, link_text).click()
    return downloaded(folder, suffix, before).read_bytes()


def test_the_rgc_runs_a_three_agent_review_and_downloads_both_reports(
    served: tuple[Hub, str], browser: Any, tmp_path: Path
) -> None:
    _, base = served
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})

    log_in(browser, base, "rgc-cd33")
    submit(browser, browser.find_element(By.LINK_TEXT, "Revues annuelles"))
    assert "Aucune revue" in text(browser)
    accessible(browser)
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Ouvrir la revue']"))
    assert "Campagne ouverte" in text(browser)
    accessible(browser)
    agents = {
        row.text.split("\n")[0] for row in browser.find_elements(By.CSS_SELECTOR, "table.revue tbody td:first-child")
    }
    assert {"Agent AGT-0042", "Agent AGT-7"} <= agents and len(agents) == 3, agents

    # One bulk decision: every line but the last kept, with one comment.
    boxes = browser.find_elements(By.CSS_SELECTOR, "input[name='elements']")
    for box in boxes[:-1]:
        box.click()
    browser.find_element(By.ID, "decision-maintenir").click()
    browser.find_element(By.ID, "commentaire").send_keys("Toujours en poste, accès vérifiés")
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Appliquer aux lignes cochées']"))
    page = text(browser)
    assert f"{len(boxes) - 1} décision(s) enregistrée(s)" in page
    assert f"Avancement : {len(boxes) - 1} décidée(s) sur {len(boxes)}" in page
    accessible(browser)

    # The last line on its own, from its row.
    last_row = browser.find_elements(By.CSS_SELECTOR, "table.revue tbody tr")[-1]
    submit(browser, last_row.find_element(By.XPATH, ".//button[starts-with(normalize-space(), 'Révoquer')]"))
    assert f"Avancement : {len(boxes)} décidée(s) sur {len(boxes)}" in text(browser)
    accessible(browser)

    draft = download(browser, tmp_path, "projet de rapport (PDF)", ".pdf")
    assert draft.startswith(b"%PDF-") and b"PROJET" in draft

    browser.find_element(By.ID, "confirmation").click()
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Clôturer la revue']"))
    assert "Campagne clôturée" in text(browser) and "Rapport définitif" in text(browser)
    accessible(browser)

    final = download(browser, tmp_path, "Télécharger le rapport (PDF)", ".pdf")
    assert final.startswith(b"%PDF-") and b"PROJET" not in final and b"Agent AGT-7" in final
    table = download(browser, tmp_path, "Télécharger le tableau (CSV", ".csv")
    assert table.startswith(b"\xef\xbb\xbf") and "Décision".encode() in table and b";" in table

    submit(browser, browser.find_element(By.LINK_TEXT, "← Revues annuelles"))
    assert "Clôturée" in text(browser)
    accessible(browser)
