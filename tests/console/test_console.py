"""The console over HTTP: login by persona, session cookie, CSRF, headers, roles, audit.

Through the real app and database (the ``hub``), as a browser would post its forms.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import col, select

from api.console.session import LOGIN_COOKIE, csrf_token
from audit.models import AuditEvent
from habilitations.models import Agent, Habilitation
from relais.core.tables import Organisation
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import RECHERCHE_SCOPES

RECHERCHE = RECHERCHE_SCOPES.split()

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def login(hub: Hub, persona: str) -> str:
    """Log in as ``persona``; the CSRF token of the session's forms."""
    hub.client.cookies.clear()
    page = hub.client.get("/console/connexion")
    token = CSRF.search(page.text)
    assert token, page.text
    answer = hub.client.post(
        "/console/connexion/persona", data={"csrf": token.group(1), "persona": persona}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    home = hub.client.get("/console/")
    assert home.status_code == 200
    found = CSRF.search(home.text)
    assert found
    return found.group(1)


def agent_named(hub: Hub, organisation: str, identifiant: str) -> int:
    with hub.services.database.session() as session:
        org = session.exec(select(Organisation).where(Organisation.code == organisation)).one()
        agent = session.exec(
            select(Agent).where(
                Agent.organisation_id == org.id, Agent.identifiant == identifiant, Agent.client_id == ""
            )
        ).one()
        assert agent.id is not None
        return agent.id


def test_root_leads_to_the_console_and_the_console_to_its_login(console: Hub) -> None:
    root = console.client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    home = console.client.get("/console/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/console/connexion"
    page = console.client.get("/console/connexion")
    assert page.status_code == 200 and "RGC du Département de la Gironde" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text


def test_personas_are_refused_unless_enabled(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAIS_CONSOLE_PERSONAS", raising=False)
    hub.client.cookies.clear()
    page = hub.client.get("/console/connexion")
    assert "RGC du Département" not in page.text
    # A hand-made form with a valid token: the server still refuses.
    token = csrf_token(hub.client.cookies[LOGIN_COOKIE])
    answer = hub.client.post(
        "/console/connexion/persona", data={"csrf": token, "persona": "rgc-cd33"}, follow_redirects=False
    )
    assert answer.status_code == 403 and "pas activée" in answer.text
    assert "relais_console=" not in answer.headers.get("set-cookie", "")


def test_a_login_without_its_csrf_token_is_refused(console: Hub) -> None:
    console.client.get("/console/connexion")
    answer = console.client.post("/console/connexion/persona", data={"persona": "rgc-cd33"}, follow_redirects=False)
    assert answer.status_code == 403
    assert console.client.get("/console/", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_console(console: Hub) -> None:
    page = console.client.get("/console/connexion")
    token = CSRF.search(page.text)
    assert token
    answer = console.client.post(
        "/console/connexion/persona", data={"csrf": token.group(1), "persona": "rgc-cd33"}, follow_redirects=False
    )
    cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith("relais_console="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    # Served over plain http in tests: Secure would make the browser drop it.
    assert "Secure" not in cookie


def test_the_rgc_grants_by_profile_and_a_useless_grant_is_refused(console: Hub) -> None:
    csrf = login(console, "rgc-cd33")
    board = console.client.get("/console/habilitations")
    assert board.status_code == 200 and "Agent AGT-7" in board.text and "Suspensions d'inactivité" in board.text
    worker = agent_named(console, "CD33", "AGT-7")
    with console.services.database.session() as session:
        grant = session.exec(
            select(Habilitation).where(Habilitation.agent_id == worker, Habilitation.api == "rechercher-usager-v2")
        ).one()
    revoked = console.client.post(
        f"/console/habilitations/{grant.id}/etat",
        data={"csrf": csrf, "action": "revoquer", "motif": "changement_fonction"},
    )
    assert revoked.status_code == 200 and "Habilitation révoquée" in revoked.text
    assert 'value="RechercherUsagerParNumeroFranceTravail"' in revoked.text

    useless = console.client.post(
        f"/console/habilitations/agents/{worker}/accorder",
        data={"csrf": csrf, "api": "rechercher-usager-v2", "finalite": "Accompagnement RSA"},
    )
    assert useless.status_code == 400 and "aucune opération" in useless.text

    granted = console.client.post(
        f"/console/habilitations/agents/{worker}/accorder",
        data={
            "csrf": csrf,
            "api": "rechercher-usager-v2",
            "operations-rechercher-usager-v2": ["RechercherUsagerParNumeroFranceTravail"],
            "finalite": "Accompagnement RSA",
        },
    )
    assert granted.status_code == 200 and "Habilitation accordée" in granted.text
    with console.services.database.session() as session:
        active = session.exec(
            select(Habilitation).where(
                Habilitation.agent_id == worker,
                Habilitation.api == "rechercher-usager-v2",
                Habilitation.etat == "actif",
            )
        ).one()
    assert sorted(active.scopes) == sorted(RECHERCHE)


def test_a_form_without_the_session_csrf_token_changes_nothing(console: Hub) -> None:
    login(console, "rgc-cd33")
    worker = agent_named(console, "CD33", "AGT-7")
    with console.services.database.session() as session:
        grant = session.exec(select(Habilitation).where(Habilitation.agent_id == worker)).first()
    assert grant is not None
    forged = console.client.post(
        f"/console/habilitations/{grant.id}/etat", data={"action": "revoquer", "motif": "x", "csrf": "0" * 64}
    )
    assert forged.status_code == 403
    with console.services.database.session() as session:
        again = session.get(Habilitation, grant.id)
        assert again is not None and again.etat == "actif"


def test_the_menu_offers_only_what_the_person_may_open(console: Hub) -> None:
    login(console, "integrateur-cd33")
    home = console.client.get("/console/").text
    assert 'href="/console/habilitations"' not in home and 'href="/console/audit"' not in home
    login(console, "rgc-cd33")
    home = console.client.get("/console/").text
    assert 'href="/console/habilitations"' in home and 'href="/console/audit"' not in home
    login(console, "rssi-cd33")
    assert 'href="/console/audit"' in console.client.get("/console/").text


def test_roles_are_the_admin_apis_own(console: Hub) -> None:
    login(console, "integrateur-cd33")
    board = console.client.get("/console/habilitations")
    assert board.status_code == 403 and "Consultation réservée" in board.text
    audit = console.client.get("/console/audit")
    assert audit.status_code == 403 and "Réservé au RSSI" in audit.text
    login(console, "rgc-cd33")
    assert console.client.get("/console/audit").status_code == 403
    assert console.client.get("/console/habilitations?organisation=CD93").status_code == 403


def test_the_rssi_finds_who_consulted_a_usager_by_post_only(console: Hub) -> None:
    partner = console.client.post(
        "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=console.headers(console.token("cd33")),
    )
    assert partner.status_code == 200
    csrf = login(console, "rssi-cd33")
    assert console.client.get("/console/audit").status_code == 200
    found = console.client.post(
        "/console/audit", data={"csrf": csrf, "type": "numero", "valeur": GIRONDE.numero, "periode": "30"}
    )
    assert found.status_code == 200
    assert "Rechercher un usager par numéro France Travail" in found.text
    # The value typed is neither echoed back nor put in any address.
    assert GIRONDE.numero not in found.text and str(found.url).endswith("/console/audit")


def test_every_console_page_is_audited_with_its_agent(console: Hub) -> None:
    login(console, "rgc-cd33")
    console.client.get("/console/habilitations")
    rgc = agent_named(console, "CD33", "RGC-CD33")
    with console.services.database.session() as session:
        events = session.exec(
            select(AuditEvent).where(col(AuditEvent.operation).startswith("console.")).order_by(col(AuditEvent.id))
        ).all()
    seen = [(event.operation, event.agent_id, event.decision) for event in events]
    assert ("console.connexion", rgc, "allowed") in seen
    assert ("console.habilitations.tableau", rgc, "allowed") in seen
    board = next(event for event in events if event.operation == "console.habilitations.tableau")
    assert board.target == "organisation:CD33" and board.channel == "admin-api"


def test_the_session_cookie_is_secure_when_relais_is_served_over_https(console: Hub) -> None:
    original = console.services.settings
    console.services.settings = original.model_copy(update={"public_url": "https://relais.test"})
    # Secure cookies go back over HTTPS only: the browser is on https://.
    try:
        page = console.client.get("https://testserver/console/connexion")
        token = CSRF.search(page.text)
        assert token
        answer = console.client.post(
            "https://testserver/console/connexion/persona",
            data={"csrf": token.group(1), "persona": "rssi-cd33"},
            follow_redirects=False,
        )
    finally:
        console.services.settings = original
    cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith("relais_console="))
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_the_cssi_reads_any_organisation_and_the_rssi_only_their_own(console: Hub) -> None:
    login(console, "cssi-ft")
    board = console.client.get("/console/habilitations?organisation=CD93")
    assert board.status_code == 200 and 'name="organisation"' in board.text
    login(console, "rssi-cd33")
    assert console.client.get("/console/habilitations").status_code == 200
    assert console.client.get("/console/habilitations?organisation=CD93").status_code == 403


def test_logout_ends_the_session(console: Hub) -> None:
    csrf = login(console, "rgc-cd33")
    out = console.client.post("/console/deconnexion", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/console/connexion"
    assert console.client.get("/console/", follow_redirects=False).status_code == 303


def test_a_refused_page_is_audited_with_its_reason(console: Hub) -> None:
    login(console, "integrateur-cd33")
    assert console.client.get("/console/habilitations").status_code == 403
    integrator = agent_named(console, "CD33", "INTEG-CD33")
    with console.services.database.session() as session:
        event = session.exec(
            select(AuditEvent).where(
                AuditEvent.operation == "console.habilitations.tableau", AuditEvent.agent_id == integrator
            )
        ).one()
    assert event.decision == "denied" and event.http_status == 403 and event.reason == "role:lire"
