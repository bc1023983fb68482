"""Relais' access tokens at France Travail: cached per scope set, renewed before expiry, and
fetched once when many calls need a new one at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from pytest_httpx import HTTPXMock

from adapters.france_travail.tokens import TokenProvider
from tests.adapters.gateway_fixtures import FT_CLIENT_ID, FT_CLIENT_SECRET, TOKEN_URL, FakeFranceTravail

SCOPES = frozenset({"api_rechercher-usagerv2", "rechercheusager", "profil_accedant"})
OTHER_SCOPES = frozenset({"api_rendez-vous-partenairev1", "gererRDV"})


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(http: httpx.Client, clock: Monotonic | None = None) -> TokenProvider:
    extra = {"monotonic": clock} if clock is not None else {}
    return TokenProvider(
        http,
        token_url=TOKEN_URL,
        realm="/agent",
        client_id=FT_CLIENT_ID,
        client_secret=FT_CLIENT_SECRET,
        margin_seconds=60,
        **extra,
    )


def test_a_token_is_reused_until_shortly_before_it_expires(httpx_mock: HTTPXMock) -> None:
    upstream = FakeFranceTravail(expires_in=1499)
    httpx_mock.add_callback(upstream.handle, is_reusable=True)
    clock = Monotonic()
    with httpx.Client() as http:
        tokens = provider(http, clock)
        first = tokens.token(SCOPES)
        clock.now += 1499 - 61
        assert tokens.token(SCOPES) == first
        clock.now += 2  # now inside the renewal margin
        assert tokens.token(SCOPES) != first
    assert len(upstream.token_requests) == 2


def test_each_scope_set_has_its_own_token(httpx_mock: HTTPXMock) -> None:
    upstream = FakeFranceTravail()
    httpx_mock.add_callback(upstream.handle, is_reusable=True)
    with httpx.Client() as http:
        tokens = provider(http)
        assert tokens.token(SCOPES) != tokens.token(OTHER_SCOPES)
        assert tokens.token(SCOPES) == tokens.token(frozenset(SCOPES))
    assert len(upstream.token_requests) == 2


def test_concurrent_callers_share_a_single_refresh(httpx_mock: HTTPXMock) -> None:
    # The token endpoint holds its answer until every caller has asked for a token: without
    # the single refresh in flight, each of them would have fetched its own.
    upstream = FakeFranceTravail(token_gate=threading.Event())
    httpx_mock.add_callback(upstream.handle, is_reusable=True)
    callers = 8
    started = threading.Barrier(callers + 1)
    results: list[str] = []

    with httpx.Client() as http:
        tokens = provider(http)

        def call() -> None:
            started.wait(timeout=10)
            results.append(tokens.token(SCOPES))

        threads = [threading.Thread(target=call) for _ in range(callers)]
        for thread in threads:
            thread.start()
        started.wait(timeout=10)
        assert upstream.token_entered.wait(timeout=10)
        assert upstream.token_gate is not None
        upstream.token_gate.set()
        for thread in threads:
            thread.join(timeout=10)

    assert len(upstream.token_requests) == 1
    assert results == ["ft-access-1"] * callers


def test_a_refused_token_is_forgotten_but_a_renewed_one_is_kept(httpx_mock: HTTPXMock) -> None:
    upstream = FakeFranceTravail()
    httpx_mock.add_callback(upstream.handle, is_reusable=True)
    with httpx.Client() as http:
        tokens = provider(http)
        old = tokens.token(SCOPES)
        tokens.invalidate(SCOPES, old)
        new = tokens.token(SCOPES)
        # A second caller that still held the old token must not throw the new one away.
        tokens.invalidate(SCOPES, old)
        assert tokens.token(SCOPES) == new != old
    assert len(upstream.token_requests) == 2


def test_the_backend_setting_selects_the_gateway(tmp_path: Path) -> None:
    from adapters.france_travail.backends import RechercherUsagerGateway
    from api.app import build_services
    from tests.adapters.gateway_fixtures import gateway_settings

    settings = gateway_settings(data_dir=tmp_path, generate_dev_keys=True)
    services = build_services(settings)
    try:
        assert isinstance(services.backends.rechercher_usager, RechercherUsagerGateway)
    finally:
        services.database.dispose()
    with pytest.raises(ValueError, match="RELAIS_FT_CLIENT_ID"):
        build_services(gateway_settings(data_dir=tmp_path, generate_dev_keys=True, ft_client_id=""))
