"""Diagnostic argumenté v4: read, create, delete as FT's collection calls them; every refusal an
editor meets (scopes, habilitation, perimeter, unknown id) and the audit event of each call."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import col, select

from audit.models import AuditEvent
from parcours.diagnostic_tables import DiagnosticArgumente
from parcours.tables import Usager, UsagerOrganisation
from relais.core.ratelimit import RateLimiter
from relais.core.tables import Organisation
from relais.demo.dataset import seed_demo_diagnostics
from tests.support.hub import Hub
from tests.support.people import GIRONDE, RATTACHE_EXPLICITE, SEINE_SAINT_DENIS, Person
from tests.support.scopes import AGENT, DIAGNOSTIC_SCOPES, RDV_SCOPES, RECHERCHE, RECHERCHE_SCOPES

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE = "/partenaire/diagnosticargumente/v4/diagnostics"
# FT's own example body (SIP Postman collection, « 4.2 Créer un diagnostic »).
FT_BODY = {
    "codeAppellation": "10857",
    "codeRome": "K1304",
    "codeSousTypologie": None,
    "codeTypologie": "MR",
    "idMetierChiffre": "23ad783f-1156-4208-a7c4-2433ff6109ec#IL8Oa-yDDihKN84ysNGLzkhSjTjBNH32glAnpG9Vuh0",
}
DATE_HEURE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|[+-]\d{2}:\d{2})$")
FIELDS = {
    "idDiagnostic",
    "idMetierChiffre",
    "nomMetier",
    "typologie",
    "codeTypologie",
    "codeSousTypologie",
    "codeRome",
    "codeAppellation",
    "statut",
    "estPrioritaire",
    "agent",
    "dateMiseAJour",
    "dateMiseAJourProjet",
    "estCreationPartenaire",
}
_tests_run = iter(range(1_000_000))


@pytest.fixture(scope="module")
def shared_hub(module_hub: Hub) -> Hub:
    return module_hub


@pytest.fixture
def hub(shared_hub: Hub) -> Hub:
    shared_hub.clock.now = START + timedelta(minutes=next(_tests_run))
    shared_hub.services.rate_limiter = RateLimiter()
    with shared_hub.services.database.transaction() as session:
        session.exec(delete(DiagnosticArgumente))
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == RATTACHE_EXPLICITE.numero)).one()
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        if session.get(UsagerOrganisation, (usager.id, cd33.id)) is None:
            assert cd33.id is not None
            session.add(UsagerOrganisation(usager_id=usager.id, organisation_id=cd33.id))
    return shared_hub


class Api:
    def __init__(self, hub: Hub, client: str = "cd33", scope: str = DIAGNOSTIC_SCOPES) -> None:
        self.hub = hub
        self.token = hub.token(client, f"{scope} {RECHERCHE_SCOPES}")
        self._jetons: dict[str, str] = {}

    def jeton(self, person: Person) -> str:
        if person.numero not in self._jetons:
            response = self.hub.client.post(
                f"{RECHERCHE}/par-numero-francetravail",
                json={"numeroFranceTravail": person.numero},
                headers=self.hub.headers(self.token),
            )
            assert response.json()["codeRetour"] == "S001", response.text
            self._jetons[person.numero] = response.json()["jetonUsager"]
        return self._jetons[person.numero]

    def headers(self, person: Person, **extra: str) -> dict[str, str]:
        return self.hub.headers(self.token, **{"ft-jeton-usager": self.jeton(person)}, **extra)

    def lister(self, person: Person) -> httpx.Response:
        return self.hub.client.get(BASE, headers=self.headers(person))

    def creer(self, person: Person, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.hub.client.post(BASE, json=FT_BODY if body is None else body, headers=self.headers(person))

    def supprimer(self, person: Person, identifiant: str) -> httpx.Response:
        # FT's collection sends a body with its DELETE: it is ignored.
        return self.hub.client.request(
            "DELETE", f"{BASE}/{identifiant}/supprime", json={**FT_BODY, "nomMetier": "x"}, headers=self.headers(person)
        )


@pytest.fixture
def api(hub: Hub) -> Api:
    return Api(hub)


def last_event(hub: Hub) -> AuditEvent:
    with hub.services.database.session() as session:
        event = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
    assert event is not None
    return event


def usager_id(hub: Hub, person: Person) -> str:
    with hub.services.database.session() as session:
        return session.exec(select(Usager).where(Usager.numero_france_travail == person.numero)).one().id


class TestLireCreerSupprimer:
    def test_an_usager_without_diagnostic_reads_200_and_an_empty_list(self, api: Api) -> None:
        response = api.lister(GIRONDE)
        assert response.status_code == 200, response.text
        assert response.json() == {"diagnostics": []}

    def test_creation_answers_200_with_the_diagnostic_as_ft_shows_it(self, hub: Hub, api: Api) -> None:
        response = api.creer(GIRONDE)
        assert response.status_code == 200, response.text
        created = response.json()
        assert set(created) == FIELDS
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", created["idDiagnostic"])
        assert {key: created[key] for key in FT_BODY} == FT_BODY
        assert created["typologie"] == "métier recherché"
        assert created["statut"] == "EN_COURS"
        assert created["estPrioritaire"] is False
        assert created["estCreationPartenaire"] is True
        assert created["agent"] == {
            "id": AGENT["pa-identifiant-agent"],
            "nom": AGENT["pa-nom-agent"],
            "prenom": AGENT["pa-prenom-agent"],
            "structure": "Département 33",  # the test dataset's libellé of CD33
        }
        assert DATE_HEURE.match(created["dateMiseAJour"])
        # Paris time with its offset, as France Travail's aggregated file writes it.
        assert created["dateMiseAJour"].endswith("+01:00")
        assert created["dateMiseAJourProjet"] is None
        assert api.lister(GIRONDE).json() == {"diagnostics": [created]}

    def test_unknown_fields_are_ignored_and_nom_metier_kept(self, api: Api) -> None:
        body = {**FT_BODY, "nomMetier": "Aide ménager / Aide ménagère à domicile", "champInconnu": 1}
        created = api.creer(GIRONDE, body).json()
        assert created["nomMetier"] == "Aide ménager / Aide ménagère à domicile"
        assert "champInconnu" not in created

    def test_deletion_answers_200_and_the_diagnostic_is_gone(self, api: Api) -> None:
        kept = api.creer(GIRONDE).json()
        gone = api.creer(GIRONDE, {**FT_BODY, "codeRome": "F1204"}).json()
        response = api.supprimer(GIRONDE, gone["idDiagnostic"])
        assert response.status_code == 200, response.text
        assert api.lister(GIRONDE).json() == {"diagnostics": [kept]}

    def test_unknown_id_on_delete_is_404_diagnostic_inconnu(self, api: Api) -> None:
        response = api.supprimer(GIRONDE, "c4851c54-8912-4548-91a6-29c2f4fa6163")
        assert response.status_code == 404
        assert response.json()["codeErreur"] == "DIAGNOSTIC_INCONNU"

    def test_another_usagers_diagnostic_is_as_unknown_and_kept(self, api: Api) -> None:
        other = api.creer(RATTACHE_EXPLICITE).json()
        response = api.supprimer(GIRONDE, other["idDiagnostic"])
        assert response.status_code == 404
        assert api.lister(RATTACHE_EXPLICITE).json() == {"diagnostics": [other]}

    def test_a_body_without_code_typologie_is_400_naming_the_field(self, api: Api) -> None:
        response = api.creer(GIRONDE, {"codeRome": "K1304"})
        assert response.status_code == 400
        assert response.json()["codeHttp"] == 400
        assert "codeTypologie" in response.json()["message"]


class TestRefus:
    def test_a_token_without_the_diagnostic_scopes_is_403(self, hub: Hub) -> None:
        api = Api(hub, scope=RDV_SCOPES)
        response = api.lister(GIRONDE)
        assert response.status_code == 403
        assert response.json()["codeHttp"] == 403
        assert api.creer(GIRONDE).status_code == 403

    def test_an_agent_not_habilitated_is_403(self, api: Api) -> None:
        response = api.hub.client.get(BASE, headers=api.headers(GIRONDE, **{"pa-identifiant-agent": "RGC-CD33"}))
        assert response.status_code == 403

    def test_a_missing_jeton_is_401(self, api: Api) -> None:
        response = api.hub.client.get(BASE, headers=api.hub.headers(api.token))
        assert response.status_code == 401
        assert response.json()["codeErreur"] == "JETON_USAGER_ABSENT"

    def test_an_usager_no_longer_attached_to_the_caller_is_403(self, hub: Hub, api: Api) -> None:
        jeton_headers = api.headers(RATTACHE_EXPLICITE)
        with hub.services.database.transaction() as session:
            session.exec(
                delete(UsagerOrganisation).where(
                    col(UsagerOrganisation.usager_id) == usager_id(hub, RATTACHE_EXPLICITE)
                )
            )
        response = hub.client.post(BASE, json=FT_BODY, headers=jeton_headers)
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "USAGER_NON_RATTACHE"
        with hub.services.database.session() as session:
            assert session.exec(select(DiagnosticArgumente)).first() is None

    def test_another_organisations_jeton_is_refused(self, hub: Hub, api: Api) -> None:
        cd93 = Api(hub, client="cd93")
        response = hub.client.get(
            BASE, headers=hub.headers(api.token, **{"ft-jeton-usager": cd93.jeton(SEINE_SAINT_DENIS)})
        )
        assert response.status_code == 403
        assert response.json()["codeErreur"] == "JETON_USAGER_NON_AUTORISE"


class TestAudit:
    def test_each_call_is_audited_for_the_agent_and_the_usager(self, hub: Hub, api: Api) -> None:
        created = api.creer(GIRONDE).json()
        event = last_event(hub)
        assert (event.http_status, event.decision) == (200, "allowed")
        assert event.agent_identifiant == AGENT["pa-identifiant-agent"]
        assert event.usager_id == usager_id(hub, GIRONDE)
        assert "diagnostic" in event.operation.lower()
        api.supprimer(GIRONDE, created["idDiagnostic"])
        assert last_event(hub).usager_id == usager_id(hub, GIRONDE)

    def test_a_refused_deletion_is_audited_with_its_code(self, hub: Hub, api: Api) -> None:
        api.supprimer(GIRONDE, "inconnu")
        event = last_event(hub)
        assert event.http_status == 404
        assert event.reason == "unknown:DIAGNOSTIC_INCONNU"
        assert event.usager_id == usager_id(hub, GIRONDE)


class TestDemo:
    def test_the_demo_gives_a_metier_recherche_once_to_usagers_with_a_contrat(self, hub: Hub, api: Api) -> None:
        records = [{"type": "contrat-engagement", "data": {"numeroFranceTravail": GIRONDE.numero}}]
        with hub.services.database.transaction() as session:
            assert seed_demo_diagnostics(session, records, now=hub.clock.now) == 1
        with hub.services.database.transaction() as session:
            assert seed_demo_diagnostics(session, records, now=hub.clock.now) == 0
        (diagnostic,) = api.lister(GIRONDE).json()["diagnostics"]
        assert (diagnostic["codeRome"], diagnostic["nomMetier"]) == ("K1304", "Aide ménager / Aide ménagère à domicile")
        assert diagnostic["agent"]["id"] == "AGT-0042"
