"""ProConnect login into the console, against the fake provider: it ends in the session cookie."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from pytest_httpx import HTTPXMock
from sqlmodel import select

from habilitations.login_models import OrganisationSiret
from relais.core.tables import Organisation
from tests.fakes.proconnect import FakeProConnect, FakeUser
from tests.habilitations.test_login import add_agent
from tests.support.hub import Hub

REDIRECT_URI = "https://relais.test/console/connexion/retour"
EMAIL = "agent.console@gironde.fr"
SIRET = "22330001300016"


@pytest.fixture
def proconnect(console: Hub, httpx_mock: HTTPXMock) -> Iterator[FakeProConnect]:
    fake = FakeProConnect(redirect_uris=(REDIRECT_URI,), clock=console.clock, user=FakeUser(email=EMAIL, siret=SIRET))
    fake.install(httpx_mock)
    original = console.services.settings
    console.services.settings = original.model_copy(
        update={
            "proconnect_issuer": fake.issuer,
            "proconnect_client_id": fake.client_id,
            "proconnect_client_secret": fake.client_secret,
            "proconnect_redirect_uri": REDIRECT_URI,
        }
    )
    with console.services.database.session() as session:
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        session.add(OrganisationSiret(siret=SIRET, organisation_id=cd33.id))  # type: ignore[arg-type]
        session.commit()
    try:
        yield fake
    finally:
        console.services.settings = original


def test_a_proconnect_login_opens_a_console_session(console: Hub, proconnect: FakeProConnect) -> None:
    add_agent(console, identifiant="AGT-CONSOLE", email=EMAIL)
    page = console.client.get("/console/connexion")
    assert 'href="/console/connexion/proconnect"' in page.text
    start = console.client.get("/console/connexion/proconnect", follow_redirects=False)
    assert start.status_code == 302
    back = urlsplit(proconnect.authorize(start.headers["location"]))
    assert back.path == "/console/connexion/retour"
    done = console.client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/"
    # The token is in the HttpOnly cookie, never on the page.
    assert "jetonAcces" not in done.text
    home = console.client.get("/console/")
    assert home.status_code == 200 and "Claire Martin" in home.text
    # Replaying the same answer is refused: the login attempt is spent.
    console.client.cookies.clear()
    replay = console.client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert replay.status_code == 400 and "relais_console=" not in replay.headers.get("set-cookie", "")
