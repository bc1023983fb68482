"""Operational endpoints, docs, and France Travail-style rate limiting."""

from __future__ import annotations

from relais.core.ratelimit import RateLimiter
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import RECHERCHE


def test_healthz_and_readyz(hub: Hub) -> None:
    assert hub.client.get("/healthz").json() == {"status": "ok"}
    ready = hub.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "keys": "ok"}


def test_readyz_reports_an_unreachable_database(hub: Hub) -> None:
    from relais.core.db import Database

    real = hub.services.database
    hub.services.database = Database("postgresql://nobody@127.0.0.1:1/nowhere")
    try:
        ready = hub.client.get("/readyz")
    finally:
        hub.services.database.dispose()
        hub.services.database = real
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "indisponible"


def test_jwks_publishes_public_keys_only(hub: Hub) -> None:
    jwks = hub.client.get("/.well-known/jwks.json").json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key["kty"] == "EC" and key["alg"] == "ES256" and key["kid"]
        assert "d" not in key


def test_swagger_ui_is_served_for_each_api(hub: Hub) -> None:
    for base in (
        "/connexion",
        "/partenaire/rechercher-usager/v2",
        "/partenaire/informations-administratives/v1",
        "/partenaire/contrat-usager/v2",
    ):
        assert hub.client.get(f"{base}/ui/").status_code == 200
        assert hub.client.get(f"{base}/openapi.json").json()["openapi"] == "3.0.3"


def frozen_second(hub: Hub) -> None:
    """Every call of the test falls in the same one-second window, however slow the machine."""
    hub.services.rate_limiter = RateLimiter(clock=lambda: 1_000_000.25)


def test_rate_limit_answers_429_like_france_travail(hub: Hub) -> None:
    token = hub.token("cd33-slow")
    frozen_second(hub)
    statuses = []
    last = None
    for _ in range(4):
        last = hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": GIRONDE.numero},
            headers=hub.headers(token),
        )
        statuses.append(last.status_code)
    assert statuses == [200, 200, 429, 429]
    limited = last
    assert limited is not None and limited.status_code == 429
    assert limited.headers["content-type"].startswith("text/plain")
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-burst-capacity-clientidlimiter"] == "2"
    assert limited.headers["x-ratelimit-remaining-clientidlimiter"] == "0"


def test_rate_limit_is_per_client(hub: Hub) -> None:
    slow = hub.token("cd33-slow")
    other = hub.token("cd33")
    frozen_second(hub)
    for _ in range(3):
        hub.client.post(
            f"{RECHERCHE}/par-numero-francetravail",
            json={"numeroFranceTravail": GIRONDE.numero},
            headers=hub.headers(slow),
        )
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": GIRONDE.numero},
        headers=hub.headers(other),
    )
    assert response.status_code == 200
