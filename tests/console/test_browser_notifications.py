"""The notification inbox in a real headless Chromium: read a warning, mark it, open its page.

See ``tests/console/browser.py`` for the browser, the served app and axe-core.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

from habilitations.models import Agent
from relais.core.outbox import enqueue
from tests.console.browser import BROWSER_MARKS, By, accessible, log_in, submit, text
from tests.support.hub import Hub

pytestmark = BROWSER_MARKS


def test_the_rgc_reads_a_warning_marks_it_and_opens_the_agent_s_page(served: tuple[Hub, str], browser: Any) -> None:
    hub, base = served
    # The integrator has an inbox too, empty: it says so.
    log_in(browser, base, "integrateur-cd33")
    submit(browser, browser.find_element(By.LINK_TEXT, "Notifications"))
    accessible(browser)
    assert "Aucune notification pour le moment" in text(browser)

    log_in(browser, base, "rgc-cd33")
    with hub.services.database.transaction() as session:
        idle = session.exec(select(Agent).where(Agent.identifiant == "AGT-7")).one()
        enqueue(
            session,
            topic="habilitations.inactivite.avertissement",
            recipient="rgc:CD33",
            payload={
                "agent_id": idle.id,
                "organisation": "CD33",
                "jours_restants": 7,
                "seuil": "J-7",
                "suspension_le": "2027-01-15",
            },
            idempotency_key="navigateur:avertissement",
            now=hub.clock.now + timedelta(minutes=1),
        )
    submit(browser, browser.find_element(By.LINK_TEXT, "Notifications"))
    accessible(browser)
    page = text(browser)
    assert "Non lue Agent AGT-7 : compte suspendu le vendredi 15 janvier 2027 sans activité d'ici là" in page
    assert "(dans 7 jours)" in page and "révoquez ses habilitations depuis sa fiche" in page

    # Keyboard users reach the button as mouse users do: a real button in a form.
    submit(browser, browser.find_element(By.XPATH, "//button[starts-with(normalize-space(.), 'Marquer comme lu')]"))
    accessible(browser)
    assert "Notification marquée comme lue." in text(browser) and "Non lue" not in text(browser)

    submit(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Ouvrir la page concernée"))
    accessible(browser)
    assert browser.current_url.endswith(f"/console/habilitations/agents/{idle.id}")
    assert "AGT-7" in text(browser)
