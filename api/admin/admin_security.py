"""Bearer check of the admin APIs (``x-bearerInfoFunc`` of habilitations, audit, connectors).

Admin tokens are Relais' own ES256 JWTs with the admin audience, issued to an agent after a
ProConnect login (``relais.core.admin_tokens``). The agent and its designations are re-read on
every call, so a suspension or the end of a designation applies to the very next request.
Authorisation by role is the handlers' business: it depends on the organisation acted upon.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
from connexion.lifecycle import ConnexionRequest, ConnexionResponse

from api.context import RequestState, current_request
from api.errors import erreur_partenaire, note_refusal
from habilitations.roles import Principal, principal_for
from relais.core.access_tokens import InvalidAccessToken, TokenAudience, verify_relais_token
from relais.core.admin_tokens import ADMIN_CLIENT_ID, admin_agent_id


async def admin_token_info(token: str, request: ConnexionRequest) -> dict[str, Any] | None:
    state = current_request()
    services = state.services
    try:
        claims = verify_relais_token(
            services.keys, services.settings, token, audience=TokenAudience.ADMIN, now=services.clock()
        )
        agent_id = admin_agent_id(claims)
    except InvalidAccessToken as exc:
        note_refusal(f"invalid_token:{exc.reason}")
        return None
    state.audit.client_id = ADMIN_CLIENT_ID
    state.audit.agent_id = agent_id
    auth_time = claims.get("auth_time")
    principal = await anyio.to_thread.run_sync(
        _principal,
        state,
        agent_id,
        claims.get("acr"),
        datetime.fromtimestamp(auth_time, UTC) if type(auth_time) is int else None,
    )
    if principal is None:
        note_refusal("invalid_token:agent_inactive")
        return None
    state.principal = principal
    state.audit.organisation = principal.organisation
    state.audit.acr = principal.acr
    return {"sub": claims["sub"], "scope": [], "agent_id": agent_id}


def _principal(state: RequestState, agent_id: int, acr: Any, auth_time: datetime | None) -> Principal | None:
    return principal_for(
        state.session(),
        agent_id,
        state.services.clock(),
        acr=str(acr) if acr is not None else None,
        auth_time=auth_time,
    )


def principal_of(state: RequestState) -> Principal:
    """The agent of an authenticated admin call (the bearer check set it before any handler)."""
    assert state.principal is not None, "principal_of() outside an authenticated admin call"
    return state.principal


def current_principal() -> Principal:
    """``principal_of`` the current request, for handlers that do not hold its state."""
    return principal_of(current_request())


def admin_refused(status: int, code: str, message: str, reason: str) -> ConnexionResponse:
    """A refusal of an admin action, audited with ``reason`` (a code, never a value).

    Handlers that raise domain refusals answer through ``api.refusals.refusal_response``.
    """
    note_refusal(reason)
    return erreur_partenaire(status, code, message)
