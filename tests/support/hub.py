"""The hub: the real app on a real database holding the test dataset.

Nothing of Relais is mocked: requests go through the ASGI app, the connexion middleware,
the security check, the handlers, the reference store and the audit journal.

One app serves the whole run (loading every spec takes seconds); each ``hub`` swaps into its
``Services`` a copy of the dataset template (imported once per run), a new clock, rate limiter
and metrics, and puts back on exit whatever a test changed there (settings, backends, keys).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from api.app import build_services, create_app
from api.services import Services
from relais.core.config import Settings
from relais.core.db import Database
from relais.core.french_dates import PARIS
from relais.core.keys import KeySet
from relais.core.observability import Metrics
from relais.core.ratelimit import RateLimiter
from tests.support import tokens
from tests.support.databases import OwnDatabase, Templates
from tests.support.dataset import import_dataset, keep_dataset_agents_active
from tests.support.people import Person

# The template holding the migrated schema and the dataset.
DATASET = "dataset"


class Clock:
    """The app's clock, moved by tests that need tokens or jetons to expire."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def today(self) -> date:
        """The app's today: the date in Paris (from 23:00 or 22:00 UTC, the next UTC day's)."""
        return self.now.astimezone(PARIS).date()


@dataclass
class Hub:
    client: TestClient
    services: Services
    clock: Clock

    def token(self, client_id: str = "cd33", scope: str = tokens.DEFAULT_SCOPE) -> str:
        return tokens.partner_token(self.client, client_id, scope)

    def admin_token(self, agent_id: int, *, acr: str = "eidas2", auth_time: datetime | None = None) -> str:
        """An admin API token for an agent, as the ProConnect login issues it."""
        return tokens.admin_token(self.services, agent_id, acr=acr, auth_time=auth_time or self.clock.now)

    def headers(self, token: str, **extra: str) -> dict[str, str]:
        return tokens.agent_headers(token, **extra)

    def jeton(self, person: Person, client_id: str = "cd33") -> str:
        return tokens.jeton_usager(self.client, person, client_id)

    def audit_batches(self) -> tuple[float, float]:
        """Group commits of audit events so far and the events they held, as the metrics count
        them (``relais_audit_batch_events``), whichever way they reached the database."""
        registry = self.services.metrics.registry
        count = registry.get_sample_value("relais_audit_batch_events_count") or 0.0
        events = registry.get_sample_value("relais_audit_batch_events_sum") or 0.0
        return count, events


@dataclass(frozen=True)
class DatasetTemplate:
    """The template with the dataset, and how to import the dataset into another database."""

    name: str
    # The app's keys: the dataset's NIRs are encrypted and hashed with them.
    keys: KeySet
    directory: Path

    def import_into(self, database_url: str) -> None:
        import_dataset(database_url, self.keys, self.directory)


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
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


@pytest.fixture(scope="session")
def hub_app(shared_app: tuple[TestClient, Services]) -> tuple[TestClient, Services]:
    """The run's one app, under the name test modules import. An imported fixture is a new
    fixture of the importing module (a session fixture built again for it): the kit's own
    fixtures ask for ``shared_app``, which no module imports, so the app is built once."""
    return shared_app


@pytest.fixture(scope="session")
def dataset_template(
    database_templates: Templates,
    shared_app: tuple[TestClient, Services],
    tmp_path_factory: pytest.TempPathFactory,
) -> DatasetTemplate:
    """The dataset imported once per run, with the app's keys (they encrypt and hash NIRs)."""
    _, services = shared_app
    template = DatasetTemplate(DATASET, services.keys, tmp_path_factory.mktemp("dataset"))
    database_templates.ensure(DATASET, template.import_into, base=database_templates.migrated())
    return template


@contextmanager
def attached(app: tuple[TestClient, Services], database_url: str) -> Iterator[Hub]:
    """The shared app on ``database_url`` (dataset already there), with a new clock, limiter
    and metrics; what the test changes in its ``Services`` is put back on exit."""
    client, services = app
    before = (
        services.database,
        services.rate_limiter,
        services.metrics,
        services.clock,
        services.keys,
        services.settings,
        services.backends,
    )
    services.database = Database(database_url)
    services.rate_limiter = RateLimiter()
    services.metrics = Metrics()
    clock = Clock()
    services.clock = clock
    keep_dataset_agents_active(services.database, clock.now)
    try:
        yield Hub(client, services, clock)
    finally:
        services.database.dispose()
        (
            services.database,
            services.rate_limiter,
            services.metrics,
            services.clock,
            services.keys,
            services.settings,
            services.backends,
        ) = before


@contextmanager
def hub_on(hub_app: tuple[TestClient, Services], database_url: str, data_dir: Path) -> Iterator[Hub]:
    """The shared app on ``database_url``, a migrated database the dataset is imported into
    now (the fixtures copy a template that has it already)."""
    import_dataset(database_url, hub_app[1].keys, data_dir)
    with attached(hub_app, database_url) as hub:
        yield hub


@pytest.fixture
def hub(
    shared_app: tuple[TestClient, Services], dataset_template: DatasetTemplate, own_database: OwnDatabase
) -> Iterator[Hub]:
    """A fresh copy of the dataset for each test (the same database as ``database_url``'s)."""
    url = own_database.with_dataset(dataset_template.name, dataset_template.import_into)
    with attached(shared_app, url) as fresh:
        yield fresh


@pytest.fixture(scope="module")
def module_hub(
    shared_app: tuple[TestClient, Services],
    database_templates: Templates,
    dataset_template: DatasetTemplate,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hub]:
    """One database for a whole module, for modules whose tests reset what they touch."""
    url = database_templates.copy(dataset_template.name, tmp_path_factory.mktemp("module"))
    try:
        with attached(shared_app, url) as shared:
            yield shared
    finally:
        database_templates.drop(url)
