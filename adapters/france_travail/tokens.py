"""Relais' own access tokens at France Travail: client credentials, one per scope set.

France Travail fails a whole token request when one scope is not subscribed (contract §0.2),
so each API family asks for its own scope set and gets its own token. A token is reused until
``margin`` before it expires. When it must be renewed, one thread asks for it and the others
wait for that answer instead of asking too (RDVI found that concurrent requests invalidate
each other's tokens): a lock per scope set, checked again once held.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog

from adapters.france_travail.errors import UpstreamUnavailable

log = structlog.get_logger("relais.france_travail")

Scopes = frozenset[str]


@dataclass(frozen=True)
class _Cached:
    access_token: str
    renew_at: float  # on the monotonic clock


class TokenProvider:
    def __init__(
        self,
        http: httpx.Client,
        *,
        token_url: str,
        realm: str,
        client_id: str,
        client_secret: str,
        margin_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._realm = realm
        self._client_id = client_id
        self._client_secret = client_secret
        self._margin = margin_seconds
        self._monotonic = monotonic
        self._cache: dict[Scopes, _Cached] = {}
        self._locks: dict[Scopes, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def token(self, scopes: Scopes) -> str:
        cached = self._fresh(scopes)
        if cached is not None:
            return cached
        with self._lock_for(scopes):
            # Whoever held the lock before us may have just renewed it.
            cached = self._fresh(scopes)
            if cached is not None:
                return cached
            fetched = self._fetch(scopes)
            self._cache[scopes] = fetched
            return fetched.access_token

    def invalidate(self, scopes: Scopes, access_token: str) -> None:
        """Forget ``access_token`` (France Travail refused it), unless it was already renewed."""
        with self._lock_for(scopes):
            cached = self._cache.get(scopes)
            if cached is not None and cached.access_token == access_token:
                del self._cache[scopes]

    def _fresh(self, scopes: Scopes) -> str | None:
        cached = self._cache.get(scopes)
        if cached is not None and self._monotonic() < cached.renew_at:
            return cached.access_token
        return None

    def _lock_for(self, scopes: Scopes) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(scopes, threading.Lock())

    def _fetch(self, scopes: Scopes) -> _Cached:
        started = self._monotonic()
        try:
            response = self._http.post(
                self._token_url,
                params={"realm": self._realm},
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "scope": " ".join(sorted(scopes)),
                },
            )
        except httpx.TimeoutException:
            raise UpstreamUnavailable("token_timeout") from None
        except httpx.HTTPError:
            raise UpstreamUnavailable("token_unreachable") from None
        if response.status_code != 200:
            # France Travail's {error, error_description} names the problem, never a secret.
            log.error("france_travail_token_refused", status=response.status_code, error=_error_code(response))
            raise UpstreamUnavailable(f"token_refused:{response.status_code}")
        try:
            body = response.json()
            access_token = str(body["access_token"])
            expires_in = float(body.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise UpstreamUnavailable("token_malformed") from None
        # A token too short-lived for the margin is still used for this one call.
        return _Cached(access_token, started + max(expires_in - self._margin, 0.0))


def _error_code(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "-"
    return error if isinstance(error, str) and len(error) <= 64 else "-"
