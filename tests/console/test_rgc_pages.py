"""The RGC's everyday pages over HTTP: create an agent, grant, extend, reactivate, designations,
the dashboard's anomalies, and the admin APIs' role checks both ways on each page."""

from __future__ import annotations

import html
from datetime import date, timedelta

import httpx
from sqlmodel import select

from api.console.session import SESSION_COOKIE, csrf_token
from audit.models import AuditEvent
from habilitations.models import Agent, Designation, Habilitation
from tests.console.test_console import agent_named, login
from tests.support.hub import Hub
from tests.support.scopes import RECHERCHE_SCOPES

RECHERCHE = RECHERCHE_SCOPES.split()
BOARD = "/console/habilitations"


def shown(response: httpx.Response) -> str:
    """The page's text as the browser shows it (entities such as &#39; decoded)."""
    return html.unescape(response.text)


def session_as(hub: Hub, agent_id: int) -> str:
    """A console session for any agent (not only a persona): the CSRF token of its forms."""
    hub.client.cookies.clear()
    token = hub.admin_token(agent_id)
    hub.client.cookies.set(SESSION_COOKIE, token, path="/console")
    return csrf_token(token)


def grant_of(hub: Hub, agent_id: int, api: str = "rechercher-usager-v2") -> Habilitation:
    with hub.services.database.session() as session:
        found = session.exec(
            select(Habilitation).where(
                Habilitation.agent_id == agent_id, Habilitation.api == api, Habilitation.etat == "actif"
            )
        ).one()
    return found


def create(hub: Hub, csrf: str, identifiant: str, **extra: str) -> httpx.Response:
    fields = {"csrf": csrf, "identifiant": identifiant, "nom": "Durand", "prenom": "Léa"} | extra
    return hub.client.post(f"{BOARD}/agents/nouveau", data=fields)


def test_the_rgc_creates_an_agent_grants_by_profile_and_extends(console: Hub) -> None:
    csrf = login(console, "rgc-cd33")
    form = console.client.get(f"{BOARD}/agents/nouveau")
    assert form.status_code == 200 and 'for="email"' in shown(form) and "Intérimaire" in shown(form)
    created = create(console, csrf, "AGT-NEW", email="lea.durand@gironde.fr", statut_emploi="contractuel")
    assert created.status_code == 200 and "Agent créé : Léa Durand" in shown(created)
    worker = agent_named(console, "CD33", "AGT-NEW")
    with console.services.database.session() as session:
        agent = session.get(Agent, worker)
        assert agent is not None and agent.email == "lea.durand@gironde.fr" and agent.statut_emploi == "contractuel"
    # Nothing granted yet: the dashboard lists it among the anomalies.
    board = shown(console.client.get(BOARD))
    anomalies = board[board.index('id="titre-anomalies"') : board.index('id="titre-agents"')]
    assert "Léa Durand" in anomalies and "Aucune habilitation" in anomalies

    again = create(console, csrf, "AGT-NEW", email="l.durand@gironde.fr")
    assert again.status_code == 409 and "porte déjà cet identifiant" in shown(again)
    # The form comes back with what was typed: nothing to retype but the identifiant.
    assert 'value="l.durand@gironde.fr"' in again.text and 'id="identifiant"' in again.text
    bad_mail = create(console, csrf, "AGT-NEW-2", email="lea.durand")
    assert bad_mail.status_code == 400 and "e-mail invalide" in shown(bad_mail)
    with console.services.database.session() as session:
        refusals = session.exec(
            select(AuditEvent).where(
                AuditEvent.operation == "console.habilitations.agent_creer", AuditEvent.decision == "denied"
            )
        ).all()
        assert sorted((event.http_status, event.reason) for event in refusals) == [
            (400, "email_invalide"),
            (409, "lifecycle:agent_existant"),
        ]
        assert session.exec(select(Agent).where(Agent.identifiant == "AGT-NEW-2")).first() is None

    granted = console.client.post(
        f"{BOARD}/agents/{worker}/accorder",
        data={
            "csrf": csrf,
            "api": "rechercher-usager-v2",
            "operations-rechercher-usager-v2": ["RechercherUsagerParNumeroFranceTravail"],
            "finalite": "Accompagnement RSA",
            "date_fin": "",
        },
    )
    assert granted.status_code == 200 and "Habilitation accordée : Léa Durand peut désormais appeler" in shown(granted)
    grant = grant_of(console, worker)
    assert sorted(grant.scopes) == sorted(RECHERCHE) and grant.date_fin is None

    today = console.clock.today()
    shorter = (today + timedelta(days=30)).isoformat()
    shortened = console.client.post(
        f"/console/habilitations/{grant.id}/date-fin", data={"csrf": csrf, "date_fin": shorter}
    )
    until = date.fromisoformat(shorter).strftime("%d/%m/%Y")
    assert shortened.status_code == 200 and f"raccourcie : elle prendra fin le {until}" in shown(shortened)
    later = today + timedelta(days=365)
    typed = later.strftime("%d/%m/%Y")  # typed by hand, as a French date
    extended = console.client.post(
        f"/console/habilitations/{grant.id}/date-fin", data={"csrf": csrf, "date_fin": typed}
    )
    assert extended.status_code == 200 and f"prolongée : elle court désormais jusqu'au {typed}" in shown(extended)
    assert grant_of(console, worker).date_fin == later
    endless = console.client.post(f"/console/habilitations/{grant.id}/date-fin", data={"csrf": csrf, "sans_fin": "1"})
    assert "prolongée : elle court désormais sans date de fin" in shown(endless)
    past = console.client.post(
        f"/console/habilitations/{grant.id}/date-fin", data={"csrf": csrf, "date_fin": "01/01/2000"}
    )
    assert past.status_code == 400 and "déjà passée" in shown(past)


def test_the_rgc_reactivates_an_agent_suspended_for_inactivity(console: Hub) -> None:
    worker = agent_named(console, "CD33", "AGT-7")
    with console.services.database.transaction() as session:
        agent = session.get(Agent, worker)
        assert agent is not None
        agent.etat, agent.etat_motif = "suspendu_inactivite", "inactivite"
        session.add(agent)
    csrf = login(console, "rgc-cd33")
    page = console.client.get(f"{BOARD}/agents/{worker}")
    account = shown(page)
    assert "Suspendu (inactivité)</strong> — Deux mois sans activité" in account and "Réactiver le compte" in account
    done = console.client.post(f"{BOARD}/agents/{worker}/reactiver", data={"csrf": csrf})
    assert done.status_code == 200 and "Compte réactivé : Agent AGT-7 peut de nouveau" in shown(done)
    with console.services.database.session() as session:
        agent = session.get(Agent, worker)
        assert agent is not None and agent.etat == "actif"


def test_designations_are_listed_given_and_ended_with_the_domains_refusals(console: Hub) -> None:
    login(console, "rssi-cd33")  # provisions the RSSI persona and its role
    csrf = login(console, "rgc-cd33")
    page = console.client.get(f"{BOARD}/designations")
    assert page.status_code == 200
    listed = shown(page)
    current = listed[listed.index('id="titre-en-cours"') : listed.index('id="titre-designer"')]
    assert "RGC titulaire" in current and "Camille Durand" in current and "RSSI" in current
    deputy = agent_named(console, "CD33", "AGT-0042")

    no_act = console.client.post(
        f"{BOARD}/designations", data={"csrf": csrf, "agent": str(deputy), "role": "rgc_suppleant"}
    )
    assert no_act.status_code == 400 and "acte d'engagement" in shown(no_act)
    given = console.client.post(
        f"{BOARD}/designations",
        data={"csrf": csrf, "agent": str(deputy), "role": "rgc_suppleant", "acte_engagement_le": "2026-01-15"},
    )
    assert given.status_code == 200 and "Désignation enregistrée" in shown(given)
    assert "RGC suppléant" in shown(given) and "Agent AGT-0042" in shown(given)
    twice = console.client.post(
        f"{BOARD}/designations",
        data={"csrf": csrf, "agent": str(deputy), "role": "rgc_suppleant", "acte_engagement_le": "2026-01-15"},
    )
    assert twice.status_code == 409 and "détient déjà ce rôle" in shown(twice)

    with console.services.database.session() as session:
        rows = session.exec(select(Designation).where(Designation.fin == None)).all()  # noqa: E711
        titular = next(d for d in rows if d.role == "rgc_titulaire")
        rssi = next(d for d in rows if d.role == "rssi")
        deputy_role = next(d for d in rows if d.role == "rgc_suppleant")
    # A deputy RGC may neither end the RSSI's role nor the titular's, nor designate.
    deputy_csrf = session_as(console, deputy)
    for target in (rssi, titular):
        refused = console.client.post(
            f"{BOARD}/designations/{target.id}/fin", data={"csrf": deputy_csrf, "motif": "depart"}
        )
        assert refused.status_code == 403 and "Action réservée" in shown(refused)
    designating = console.client.post(
        f"{BOARD}/designations", data={"csrf": deputy_csrf, "agent": str(deputy), "role": "rssi"}
    )
    assert designating.status_code == 403

    csrf = login(console, "rgc-cd33")
    ended = console.client.post(
        f"{BOARD}/designations/{deputy_role.id}/fin", data={"csrf": csrf, "motif": "changement_fonction"}
    )
    assert ended.status_code == 200 and "Désignation terminée" in shown(ended)
    past = shown(ended)[shown(ended).index('id="titre-terminees"') :]
    assert "RGC suppléant" in past and "Changement de fonction" in past


def test_the_dashboard_names_security_blocks_and_grants_that_open_nothing(console: Hub) -> None:
    worker = agent_named(console, "CD33", "AGT-7")
    with console.services.database.transaction() as session:
        partial = session.exec(
            select(Habilitation).where(Habilitation.agent_id == worker, Habilitation.api == "rechercher-usager-v2")
        ).one()
        # A grant from before the rule (an import, an old reduction): it opens no operation.
        partial.scopes = ["rechercheusager"]
        session.add(partial)
        blocked = session.exec(
            select(Habilitation).where(Habilitation.agent_id == worker, Habilitation.api == "statut-usager-v2")
        ).one()
        blocked.etat, blocked.etat_motif = "bloque", "usage_suspect"
        session.add(blocked)
    login(console, "rgc-cd33")
    board = shown(console.client.get(BOARD))
    blocks = board[board.index('id="titre-blocages"') : board.index('id="titre-anomalies"')]
    assert "Agent AGT-7" in blocks and "Habilitation « Statut usager v2 »" in blocks and "Usage suspect" in blocks
    anomalies = board[board.index('id="titre-anomalies"') : board.index('id="titre-agents"')]
    assert "Rechercher usager v2" in anomalies and "aucune opération" in anomalies
    agent_page = shown(console.client.get(f"{BOARD}/agents/{worker}"))
    assert "seul le CSSI de France Travail" in agent_page


def test_each_rgc_page_keeps_the_admin_apis_role_checks(console: Hub) -> None:
    worker = agent_named(console, "CD33", "AGT-7")
    other = agent_named(console, "CD93", "AGT-0042")
    grant = grant_of(console, worker)
    other_grant = grant_of(console, other)

    def posts(csrf: str, agent: int, habilitation: str, organisation: str = "CD33") -> dict[str, httpx.Response]:
        return {
            "créer": create(console, csrf, "AGT-X", organisation=organisation),
            "accorder": console.client.post(
                f"{BOARD}/agents/{agent}/accorder",
                data={"csrf": csrf, "api": "rechercher-usager-v2", "finalite": "x"},
            ),
            "prolonger": console.client.post(
                f"/console/habilitations/{habilitation}/date-fin", data={"csrf": csrf, "sans_fin": "1"}
            ),
            "révoquer": console.client.post(
                f"/console/habilitations/{habilitation}/etat",
                data={"csrf": csrf, "action": "revoquer", "motif": "depart"},
            ),
            "réactiver": console.client.post(f"{BOARD}/agents/{agent}/reactiver", data={"csrf": csrf}),
            "désigner": console.client.post(
                f"{BOARD}/designations",
                data={"csrf": csrf, "agent": str(agent), "role": "rssi", "organisation": organisation},
            ),
        }

    # The integrator holds no administration role: refused everywhere, reading included.
    csrf = login(console, "integrateur-cd33")
    for path in (BOARD, f"{BOARD}/agents/{worker}", f"{BOARD}/agents/nouveau", f"{BOARD}/designations"):
        answer = console.client.get(path)
        assert answer.status_code == 403 and "Action refusée" in shown(answer), path
    for action, answer in posts(csrf, worker, grant.id).items():
        assert answer.status_code == 403, action

    # The RSSI reads (as with the admin API) but changes nothing.
    csrf = login(console, "rssi-cd33")
    assert console.client.get(f"{BOARD}/designations").status_code == 200
    assert console.client.get(f"{BOARD}/agents/nouveau").status_code == 403
    for action, answer in posts(csrf, worker, grant.id).items():
        assert answer.status_code == 403, action

    # The CSSI may revoke but neither creates agents nor grants (the domain's rule): not offered.
    login(console, "cssi-ft")
    board = shown(console.client.get(f"{BOARD}?organisation=CD33"))
    assert "Agent AGT-7" in board and "Créer un agent" not in board
    card = shown(console.client.get(f"{BOARD}/agents/{worker}"))
    assert "Révoquer" in card and "Accorder une habilitation" not in card and "Prolonger" not in card

    # The RGC of CD33 is, for CD93, the RGC of another organisation.
    csrf = login(console, "rgc-cd33")
    for path in (f"{BOARD}?organisation=CD93", f"{BOARD}/agents/{other}", f"{BOARD}/designations?organisation=CD93"):
        assert console.client.get(path).status_code == 403, path
    assert console.client.get(f"{BOARD}/agents/nouveau?organisation=CD93").status_code == 403
    for action, answer in posts(csrf, other, other_grant.id, "CD93").items():
        assert answer.status_code == 403, action
    with console.services.database.session() as session:
        assert grant_of(console, other).etat == "actif" and grant_of(console, worker).etat == "actif"
        assert session.exec(select(Agent).where(Agent.identifiant == "AGT-X")).first() is None
