"""Access-token check for every partner operation (the specs' ``x-tokenInfoFunc``).

connexion then compares the scopes returned here with those the operation declares and
answers 403 when one is missing. The client is re-read on every call so that disabling a
client or withdrawing a scope applies to the very next request, not when tokens expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
from connexion.lifecycle import ConnexionRequest, ConnexionResponse

from api.errors import note_refusal
from habilitations.clients import get_active_client
from relais.access_tokens import InvalidAccessToken, verify_access_token
from relais.context import RequestState, current_request
from relais.models import Organisation
from relais.ratelimit import RateDecision


@dataclass(frozen=True)
class ClientRights:
    organisation: str
    scopes: frozenset[str]
    rate_limit_per_second: int


class RateLimited(Exception):
    def __init__(self, decision: RateDecision) -> None:
        super().__init__("rate limited")
        self.decision = decision


async def token_info(token: str, request: ConnexionRequest) -> dict[str, Any] | None:
    state = current_request()
    services = state.services
    try:
        claims = verify_access_token(
            services.keys,
            token,
            issuer=services.settings.issuer,
            audience=services.settings.token_audience,
            now=services.clock(),
            leeway=timedelta(seconds=services.settings.token_leeway_seconds),
            max_token_age=services.token_ttl,
        )
    except InvalidAccessToken as exc:
        note_refusal(f"invalid_token:{exc.reason}")
        return None
    client_id = str(claims["sub"])
    state.audit.client_id = client_id
    rights = await anyio.to_thread.run_sync(_client_rights, state, client_id)
    if rights is None:
        note_refusal("invalid_token:client_disabled")
        return None
    state.audit.organisation = rights.organisation
    routing = request.scope.get("extensions", {}).get("connexion_routing", {})
    api = str(routing.get("api_base_path", ""))
    decision = services.rate_limiter.hit(client_id, api, rights.rate_limit_per_second)
    if not decision.allowed:
        raise RateLimited(decision)
    scopes = [scope for scope in str(claims.get("scope", "")).split() if scope in rights.scopes]
    return {"sub": client_id, "scope": scopes, "client_id": client_id, "org": rights.organisation}


def _client_rights(state: RequestState, client_id: str) -> ClientRights | None:
    # Read in the request's own transaction: one transaction per call, audit included.
    session = state.session()
    client = get_active_client(session, client_id)
    if client is None:
        return None
    organisation = session.get(Organisation, client.organisation_id)
    if organisation is None:
        return None
    return ClientRights(
        organisation=organisation.code,
        scopes=frozenset(client.scopes),
        rate_limit_per_second=client.rate_limit_per_second or state.services.settings.rate_limit_per_second,
    )


async def handle_rate_limited(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, RateLimited)
    note_refusal("rate_limited")
    # France Travail answers 429 in plain text with these headers ("Erreurs fréquentes").
    return ConnexionResponse(
        status_code=429,
        mimetype="text/plain",
        content_type="text/plain",
        body=b"Too Many Requests",
        headers={
            "Retry-After": str(exc.decision.retry_after),
            "X-Ratelimit-Burst-Capacity-Clientidlimiter": str(exc.decision.capacity),
            "X-Ratelimit-Remaining-Clientidlimiter": str(exc.decision.remaining),
        },
    )
