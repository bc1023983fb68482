"""Background jobs start with the app, run at their interval, and stop with it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from api.app import build_services, create_app
from api.periodic import BackgroundJobs, PeriodicJob
from api.services import Services
from relais.core.config import Settings


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ASGIApp, Services]]:
    """One app for the module (building one takes a second or two): each test wraps it in
    jobs of its own, and each ``TestClient`` runs its own startup and shutdown."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("periodic"), generate_dev_keys=True)
    services = build_services(settings)
    yield create_app(settings, services), services
    services.database.dispose()


def test_jobs_run_while_the_app_is_up_and_stop_with_it(app: tuple[ASGIApp, Services]) -> None:
    ran = threading.Event()
    runs: list[str] = []

    def run(services: Services, wait: Callable[[float], bool]) -> None:
        runs.append(services.settings.public_url)
        ran.set()

    inner, services = app
    settings = services.settings
    jobs = BackgroundJobs(
        inner,
        services,
        [
            PeriodicJob("probe", lambda _: 0.01, run),
            PeriodicJob("off", lambda _: 0, lambda services, wait: runs.append("off")),
        ],
    )
    with TestClient(jobs):
        assert ran.wait(5), "the job never ran while the app was up"
    # The disabled job never ran; the other one read the app's own services.
    assert "off" not in runs
    assert runs and all(url == settings.public_url for url in runs)
    # Stopped with the app: ten intervals later, no more runs.
    count = len(runs)
    threading.Event().wait(0.1)
    assert len(runs) == count


def test_a_failing_run_is_retried_at_the_next_tick(app: tuple[ASGIApp, Services]) -> None:
    attempts: list[int] = []
    second = threading.Event()

    def flaky(services: Services, wait: Callable[[float], bool]) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database away")
        second.set()

    inner, services = app
    with TestClient(BackgroundJobs(inner, services, [PeriodicJob("flaky", lambda _: 0.01, flaky)])):
        assert second.wait(5), "the job was not retried after a failure"
