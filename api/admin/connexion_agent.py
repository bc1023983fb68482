"""Handlers of Connexion des agents v1: ProConnect login, who am I, logout.

The domain is in ``habilitations.login``; here are the HTTP shapes, the audit facts and the
order of the steps. Database work runs in the thread pool, provider calls on the event loop,
and no database connection is held while ProConnect is being called.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
from connexion.lifecycle import ConnexionResponse

from api.admin.admin_security import current_principal
from api.context import RequestState, current_request
from api.errors import erreur_partenaire, json_response, note_refusal
from api.refusals import refusal_response
from habilitations import login
from habilitations.login import Admitted, Attempt, Identity, Provider
from habilitations.refusals import LoginRefused
from relais.core.admin_tokens import issue_admin_token
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The contract's statuses for a login refused: an unknown, expired or spent login attempt is a
# bad request, an authentication that cannot be verified a 401, ProConnect down a bad gateway.
LOGIN_STATUS = {
    RefusalKind.UNKNOWN: 400,
    RefusalKind.INVALID: 401,
    RefusalKind.FORBIDDEN: 403,
    RefusalKind.UNAVAILABLE: 502,
}


def _refused(refusal: LoginRefused) -> ConnexionResponse:
    response = refusal_response(refusal, reason=refusal.reason, statuses=LOGIN_STATUS)
    response.headers.update(NO_STORE)
    return response


def _not_configured() -> ConnexionResponse:
    note_refusal("proconnect_not_configured")
    # 404 rather than 503: nothing is down, the feature is not offered by this Relais.
    return erreur_partenaire(404, "CONNEXION_NON_CONFIGUREE", login.MESSAGE_NOT_CONFIGURED)


async def commencer_connexion() -> ConnexionResponse:
    state = current_request()
    settings = state.services.settings
    if not login.is_configured(settings):
        return _not_configured()
    try:
        async with login.http_client(settings) as client:
            provider = await login.discover(client, settings)
    except LoginRefused as refusal:
        return _refused(refusal)
    url = await anyio.to_thread.run_sync(_start, state, provider)
    return ConnexionResponse(status_code=302, headers={"Location": url, **NO_STORE})


def _start(state: RequestState, provider: Provider) -> str:
    return login.start_login(state.session(), state.services.settings, provider, state.services.clock())


async def terminer_connexion(
    state: str,
    code: str | None = None,
    iss: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> ConnexionResponse:
    del error_description  # the provider's prose is neither shown nor logged
    request = current_request()
    settings = request.services.settings
    if not login.is_configured(settings):
        return _not_configured()
    try:
        # Burnt first and committed at once: whatever happens next, this state is spent.
        attempt = await anyio.to_thread.run_sync(_consume, request, state)
        if error is not None:
            raise login.provider_error(error)
        if not code:
            raise login.not_verified("code_missing")
        if iss is not None and iss != settings.proconnect_issuer.rstrip("/"):
            # RFC 9207: an answer from another issuer is a mix-up attack.
            raise login.not_verified("issuer_mismatch")
        async with login.http_client(settings) as client:
            provider = await login.discover(client, settings)
            keys = await login.fetch_keys(client, provider)
            tokens = await login.exchange_code(client, settings, provider, code, attempt.code_verifier)
            now = request.services.clock()
            id_claims = login.verify_id_token(tokens["id_token"], keys, settings, provider, attempt.nonce, now)
            # Kept in the audit trail whether accepted or not: it says how the person logged in.
            request.audit.acr = str(id_claims.get("acr"))[:128] if id_claims.get("acr") is not None else None
            acr = login.check_acr(id_claims, settings)
            userinfo = await login.fetch_userinfo(
                client, keys, settings, provider, tokens["access_token"], str(id_claims["sub"]), now
            )
        identity = Identity.from_claims(userinfo)
        admitted = await anyio.to_thread.run_sync(
            _admit, request, identity, acr, login.authentication_methods(id_claims)
        )
    except LoginRefused as refusal:
        return _refused(refusal)
    auth_time = _auth_time(id_claims, request.services.clock())
    token = issue_admin_token(
        request.services.keys,
        request.services.settings,
        now=request.services.clock(),
        agent_id=admitted.agent_id,
        organisation=admitted.organisation,
        acr=acr,
        auth_time=auth_time,
    )
    body = {
        "jetonAcces": token,
        "typeJeton": "Bearer",
        "expireDans": settings.admin_token_ttl_seconds,
        "jetonIdentite": tokens["id_token"],
        "idAgent": admitted.agent_id,
        "organisation": admitted.organisation,
        "acr": acr,
        "dateAuthentification": auth_time.isoformat(),
        "premiereConnexion": admitted.first_login,
    }
    return json_response(200, body, NO_STORE)


def _consume(request: RequestState, state: str) -> Attempt:
    session = request.session()
    try:
        attempt = login.consume_attempt(session, state, request.services.clock())
    except LoginRefused:
        session.commit()
        raise
    session.commit()
    return attempt


def _admit(request: RequestState, identity: Identity, acr: str, amr: list[str]) -> Admitted:
    session = request.session()
    try:
        admitted = login.admit_agent(
            session,
            identity,
            acr,
            request.services.clock(),
            recorder=request.services.audit_recorder,
            request_id=request.request_id,
        )
    except LoginRefused as refusal:
        if refusal.keep_writes:
            session.commit()
        raise
    request.audit.agent_id = admitted.agent_id
    request.audit.organisation = admitted.organisation
    request.audit.target = f"agent:{admitted.agent_id}"
    request.audit.details = {"premiere_connexion": admitted.first_login, "amr": amr}
    return admitted


def _auth_time(claims: dict[str, Any], now: datetime) -> datetime:
    value = claims.get("auth_time")
    if type(value) is int and value <= now.timestamp() + login.LEEWAY_SECONDS:
        return datetime.fromtimestamp(value, UTC)
    return now


async def lire_agent_connecte() -> ConnexionResponse:
    principal = current_principal()
    roles = await anyio.to_thread.run_sync(_role_codes, current_request(), principal.roles)
    return json_response(
        200,
        {
            "idAgent": principal.agent_id,
            "organisation": principal.organisation,
            "acr": principal.acr,
            "dateAuthentification": principal.auth_time.isoformat() if principal.auth_time else None,
            "roles": roles,
        },
    )


def _role_codes(request: RequestState, roles: frozenset[tuple[str, int]]) -> list[dict[str, str]]:
    session = request.session()
    found = []
    for role, organisation_id in sorted(roles):
        organisation = session.get(Organisation, organisation_id)
        if organisation is not None:
            found.append({"role": role, "organisation": organisation.code})
    return found


async def deconnecter(body: dict[str, Any]) -> ConnexionResponse:
    request = current_request()
    settings = request.services.settings
    if not login.is_configured(settings):
        return _not_configured()
    try:
        async with login.http_client(settings) as client:
            provider = await login.discover(client, settings)
        url = login.end_session_url(settings, provider, body["jetonIdentite"])
    except LoginRefused as refusal:
        return _refused(refusal)
    return json_response(200, {"urlDeconnexion": url}, NO_STORE)
