"""An app on a real, migrated database (SQLite, or PostgreSQL in CI) with a small dataset.

Nothing of Relais is mocked: requests go through the ASGI app, the connexion middleware,
the security check, the handlers, the reference store and the audit journal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, profiles
from sqlmodel import select
from starlette.testclient import TestClient

import habilitations.clients
from api.app import build_services, create_app
from api.services import Services
from habilitations.models import Agent
from habilitations.policy import subscribable
from relais.core.admin_tokens import issue_admin_token
from relais.core.config import Settings
from relais.core.db import Database
from relais.core.nir import nir_key
from relais.core.observability import Metrics
from relais.core.ratelimit import RateLimiter
from relais.core.tables import Organisation
from relais.importer import import_file
from tests.conftest import fresh_database_url

RECHERCHE_SCOPES = "api_rechercher-usagerv2 rechercheusager profil_accedant"
INFOS_SCOPES = "api_informations-administrativesv1 informationsadministrativesusager profil_accedant"
STATUT_SCOPES = "api_contrat-usagerv2 statutcontratusager profil_accedant"
ORIENTATION_SCOPES = "api_orientationusagerv1 orientationusager profil_accedant"
ACTIVITES_V1_SCOPES = "api_activites-operationnellesv1 activitesCD referentielCD profil_accedant"
ACTIVITES_V2_SCOPES = "api_activites-operationnellesv2 activitesCD"
RDV_SCOPES = "api_rendez-vous-partenairev1 gererRDV"
CONTRAT_ENGAGEMENT_SCOPES = "api_contrat-engagementv1 contratengagement"
SANCTIONS_SCOPES = "api_gestion-sanctions-rsav1 gestiondesmanquements decisionSanctionPartenaire demandeRadiation"
# Relais' producer feed (France Travail and other producers), never held by a département.
ALIMENTATION_SCOPES = "api_alimentationv1 alimentationusager alimentationorientation alimentationmanquement"
PARCOURS_SCOPES = " ".join(
    (
        ORIENTATION_SCOPES,
        ACTIVITES_V1_SCOPES,
        ACTIVITES_V2_SCOPES,
        RDV_SCOPES,
        CONTRAT_ENGAGEMENT_SCOPES,
        SANCTIONS_SCOPES,
    )
)
ALL_SCOPES = sorted(set(f"{RECHERCHE_SCOPES} {INFOS_SCOPES} {STATUT_SCOPES} {PARCOURS_SCOPES}".split()))
SECRET = "s3cret-for-tests-only-0123456789"
AGENT = {"pa-nom-agent": "Martin", "pa-prenom-agent": "Claire", "pa-identifiant-agent": "AGT-0042"}
TOKEN_URL = "/connexion/oauth2/access_token?realm=/agent"
RECHERCHE = "/partenaire/rechercher-usager/v2/usagers"
INFOS = "/partenaire/informations-administratives/v1/usager"
STATUT = "/partenaire/contrat-usager/v2/contrat"


def nir15(nir13: str) -> str:
    return nir13 + nir_key(nir13)


@dataclass(frozen=True)
class Person:
    numero: str
    nir13: str
    naissance: str
    departement: str
    certifie: str = "O"
    contrat: bool = True
    organisations: tuple[str, ...] = ()

    @property
    def nir(self) -> str:
        return nir15(self.nir13)


GIRONDE = Person("10000000001", "1850733063001", "1985-07-14", "33")
GIRONDE_SANS_CONTRAT = Person("10000000002", "2920133063002", "1992-01-02", "33", certifie="N", contrat=False)
SEINE_SAINT_DENIS = Person("10000000003", "1780593066003", "1978-05-30", "93")
RATTACHE_EXPLICITE = Person("10000000004", "2010193066004", "2001-01-20", "93", organisations=("CD33",))
CORSE = Person("10000000005", "190022A004005", "1990-02-11", "2A")
DOUBLON_A = Person("10000000006", "1880633063006", "1988-06-06", "33")
DOUBLON_B = Person("10000000007", "1880633063006", "1988-06-06", "33")
PEOPLE = (GIRONDE, GIRONDE_SANS_CONTRAT, SEINE_SAINT_DENIS, RATTACHE_EXPLICITE, CORSE, DOUBLON_A, DOUBLON_B)


def _usager_record(person: Person, index: int) -> dict[str, Any]:
    insee = {"33": "33063", "93": "93066", "2A": "2A004"}[person.departement]
    postcode = {"33": "33000", "93": "93200", "2A": "20000"}[person.departement]
    data: dict[str, Any] = {
        "numeroFranceTravail": person.numero,
        "etatCivil": {
            "civilite": "M." if person.nir13[0] == "1" else "Mme",
            "nom": f"NOM{index}",
            "prenom": f"PRENOM{index}",
            "nomCorrespondance": f"NOM{index}",
            "prenomCorrespondance": f"PRENOM{index}",
            "dateNaissance": person.naissance,
            "nir": person.nir,
        },
        "adresses": [
            {
                "codeInseeCommune": insee,
                "codePostal": postcode,
                "complementAdresse": None,
                "complementDestinataire": None,
                "complementDistribution": None,
                "libelleCommune": "COMMUNE",
                "libellePays": "FRANCE",
                "numeroTypeLibelleVoie": f"{index} RUE DES TESTS",
                "indicateurResidentQPV": "NQ",
            }
        ],
        "emails": [{"adresseEmail": f"usager{index}@example.org"}],
        "telephones": [{"numeroTelephone": "0600000000"}],
        "topIdentiteCertifiee": person.certifie,
        "organisations": list(person.organisations),
    }
    if person.contrat:
        data["contrat"] = {
            "m_statut": "Inscrit",
            "m_date_effet_statut": "2025-06-28",
            "m_duree_inscription_12": 9,
            "m_duree_inscription_24": 16,
            "m_duree_inscription_36": 28,
            "m_motif_inscription_code": "11",
            "m_motif_inscription_lib": "LICENCIEMENT ECONOMIQUE",
            "m_categ_inscription_code": "1",
            "m_categ_inscription_lib": "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PLEIN TPS",
            "m_situation_reg_emp_code": "ADR",
            "m_situation_reg_emp_lib": "AIDE DIFFERENTIELLE AU RECLASSEMENT",
            "m_motif_cloture_code": None,
            "m_motif_cloture_lib": None,
        }
    return {"type": "usager", "data": data}


def dataset() -> list[dict[str, Any]]:
    organisations = [
        {
            "type": "organisation",
            "data": {"code": code, "type": "CD", "libelle": f"Département {dep}", "territoire": [dep]},
        }
        for code, dep in (("CD33", "33"), ("CD93", "93"), ("CD2A", "2A"))
    ] + [
        {
            "type": "organisation",
            "data": {
                "code": "FT-NAQ",
                "type": "FT",
                "libelle": "France Travail Nouvelle-Aquitaine",
                "territoire": ["33"],
            },
        }
    ]
    clients = [
        {
            "type": "client",
            "data": {
                "client_id": "cd33",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": ALL_SCOPES,
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "ft-naq",
                "client_secret": SECRET,
                "organisation": "FT-NAQ",
                "scopes": sorted(set(f"{ALIMENTATION_SCOPES} {PARCOURS_SCOPES} {RECHERCHE_SCOPES}".split())),
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd33-recherche",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": RECHERCHE_SCOPES.split(),
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd93",
                "client_secret": SECRET,
                "organisation": "CD93",
                "scopes": ALL_SCOPES,
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd33-off",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": ALL_SCOPES,
                "enabled": False,
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd33-slow",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": ALL_SCOPES,
                "rate_limit_per_second": 2,
            },
        },
    ]
    usagers = [_usager_record(person, index) for index, person in enumerate(PEOPLE, start=1)]
    return organisations + clients + usagers + habilitations_records(clients)


def keep_dataset_agents_active(database: Database, now: datetime) -> None:
    """Tests move the clock by months (contract suspensions, due dates): the dataset's agents
    stay clear of the two-month inactivity rule, which tests/habilitations exercise with
    agents of their own."""
    with database.transaction() as session:
        for agent in session.exec(select(Agent)).all():
            agent.derniere_activite = now + timedelta(days=365 * 30)
            session.add(agent)


# The agents the tests name in ``pa-identifiant-agent``: (organisation, identifiant, client of
# a technical identity or None). Each is habilitated for everything its organisation's
# clients may do, within subscriptions covering the same: enforcement is on in every test.
HABILITATED_AGENTS = (
    ("CD33", "AGT-0042", None),
    ("CD33", "AGT-7", None),
    ("CD33", "BATCH", "cd33"),
    ("CD93", "AGT-0042", None),
    ("FT-NAQ", "AGT-0042", None),
)


def habilitations_records(clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    held: dict[str, set[str]] = {}
    for client in clients:
        held.setdefault(client["data"]["organisation"], set()).update(client["data"]["scopes"])
    records: list[dict[str, Any]] = []
    for organisation, scopes in held.items():
        for api, covered in subscribable(scopes).items():
            records.append(
                {"type": "subscription", "data": {"organisation": organisation, "api": api, "scopes": covered}}
            )
    for organisation, identifiant, client_id in HABILITATED_AGENTS:
        technical = {"type": "technique", "client_id": client_id} if client_id else {"statut_emploi": "contractuel"}
        records.append(
            {
                "type": "agent",
                "data": {"organisation": organisation, "identifiant": identifiant, "nom": f"Agent {identifiant}"}
                | technical,
            }
        )
        for subscription in [r["data"] for r in records if r["type"] == "subscription"]:
            if subscription["organisation"] == organisation:
                records.append(
                    {
                        "type": "habilitation",
                        "data": {
                            "organisation": organisation,
                            "agent": identifiant,
                            "api": subscription["api"],
                            "scopes": subscription["scopes"],
                            "finalite": "Accompagnement des usagers (jeu de tests)",
                        }
                        | ({"client_id": client_id} if client_id else {}),
                    }
                )
    return records


class Clock:
    """The app's clock, moved by tests that need tokens or jetons to expire."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Hub:
    client: TestClient
    services: Services
    clock: Clock

    def token(
        self,
        client_id: str = "cd33",
        scope: str = f"{RECHERCHE_SCOPES} {INFOS_SCOPES} {STATUT_SCOPES}",
    ) -> str:
        response = self.client.post(
            TOKEN_URL,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": SECRET,
                "scope": scope,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def admin_token(self, agent_id: int, *, acr: str = "eidas2", auth_time: datetime | None = None) -> str:
        """An admin API token for an agent, as the ProConnect login issues it."""
        with self.services.database.session() as session:
            agent = session.get(Agent, agent_id)
            assert agent is not None, f"no agent {agent_id}"
            organisation = session.get(Organisation, agent.organisation_id)
            assert organisation is not None
        return issue_admin_token(
            self.services,
            agent_id=agent_id,
            organisation=organisation.code,
            acr=acr,
            auth_time=auth_time or self.clock.now,
        )

    def headers(self, token: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **AGENT, **extra}

    def jeton(self, person: Person, client_id: str = "cd33") -> str:
        token = self.token(client_id)
        response = self.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": person.numero},
            headers=self.headers(token),
        )
        assert response.json()["codeRetour"] == "S001", response.text
        return str(response.json()["jetonUsager"])


@pytest.fixture(scope="session")
def hub_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    """One app for the whole run: loading every spec takes seconds, a database takes little.

    Each test swaps a fresh database, clock, rate limiter and metrics into its ``Services``
    (see ``hub``): the app reads them from there on every request.
    """
    data_dir = tmp_path_factory.mktemp("hub")
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{(data_dir / 'placeholder.db').as_posix()}",
        generate_dev_keys=True,
        validate_responses=True,
        rate_limit_per_second=1000,
        # Tests sequence, sign and detect explicitly, on their own databases.
        audit_checkpoint_interval_seconds=0,
        audit_detection_interval_seconds=0,
    )
    services = build_services(settings)
    services.database.dispose()
    with TestClient(create_app(settings, services)) as client:
        yield client, services


@contextmanager
def hub_on(hub_app: tuple[TestClient, Services], database_url: str, data_dir: Path) -> Iterator[Hub]:
    """The shared app on ``database_url`` with the dataset imported, a new clock, limiter and metrics."""
    client, services = hub_app
    keys = services.keys
    services.database = Database(database_url)
    services.rate_limiter = RateLimiter()
    services.metrics = Metrics()
    clock = Clock()
    services.clock = clock
    path = data_dir / "dataset.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in dataset()) + "\n")
    # The cheapest argon2 parameters, as tests/conftest.py sets them for each test.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(habilitations.clients, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
        import_file(services.database, services.keys, path)
    keep_dataset_agents_active(services.database, clock.now)
    try:
        yield Hub(client, services, clock)
    finally:
        services.database.dispose()
        services.keys = keys


@pytest.fixture
def hub(hub_app: tuple[TestClient, Services], database_url: str, tmp_path: Path) -> Iterator[Hub]:
    """A fresh database for each test."""
    with hub_on(hub_app, database_url, tmp_path) as fresh:
        yield fresh


@pytest.fixture(scope="module")
def module_hub(hub_app: tuple[TestClient, Services], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One database for a whole module, for modules whose tests reset what they touch."""
    directory = tmp_path_factory.mktemp("module")
    with hub_on(hub_app, fresh_database_url(directory), directory) as shared:
        yield shared
