"""The OAuth2 token endpoint, as France Travail's ``/connexion/oauth2/access_token``.

Only the ``client_credentials`` grant of realm ``/agent`` is served. As on the real
platform, asking for a single scope the client does not hold fails the whole request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import anyio
from connexion import request
from connexion.lifecycle import ConnexionResponse
from sqlmodel import Session

from api.context import RequestState, current_request
from api.errors import json_response, note_refusal
from api.security import RateLimited
from habilitations.clients import get_client, hash_secret, verify_client_secret
from relais.core.access_tokens import issue_access_token
from relais.core.ratelimit import ConcurrencyGate, Overloaded, RateDecision
from relais.core.tables import Organisation

T = TypeVar("T")

REALM = "/agent"
# Guessing secrets is slow anyway (argon2); this caps the attempts per client id.
TOKEN_ATTEMPTS_PER_SECOND = 10
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# argon2 takes 64 MiB and tens of milliseconds per check: a few at once bound memory and
# CPU; a call that cannot start its check within a second gets 503 rather than a queue.
ARGON2_CHECKS_CAPACITY = 2
ARGON2_CHECKS = ConcurrencyGate(ARGON2_CHECKS_CAPACITY, max_waiting=16, max_wait=1.0)


@dataclass(frozen=True)
class _ClientFacts:
    """What the token endpoint needs of a client, read in a short unit of work of its own."""

    client_id: str
    secret_hash: str
    enabled: bool
    scopes: tuple[str, ...]
    organisation: str


async def generer_access_token(body: dict[str, Any] | None = None, realm: str | None = None) -> ConnexionResponse:
    form = {key: str(value) for key, value in (body or {}).items()}
    if realm != REALM:
        return _error("invalid_request", "Paramètre realm absent ou invalide : seul realm=/agent est servi")
    grant_type = form.get("grant_type", "")
    if not grant_type:
        return _error("invalid_request", "Paramètre grant_type absent")
    if grant_type != "client_credentials":
        return _error("unsupported_grant_type", "Seul le grant_type client_credentials est accepté")
    client_id, secret = _client_credentials(form)
    if not client_id or not secret:
        return _error("invalid_request", "Paramètres client_id et client_secret obligatoires")

    state = current_request()
    services = state.services
    state.audit.client_id = client_id[:64]
    decision = services.rate_limiter.hit(client_id, "/connexion", TOKEN_ATTEMPTS_PER_SECOND)
    if not decision.allowed:
        raise RateLimited(decision)
    # Counted before the database and argon2, per client id and per source address, and
    # given back on success: a flood of unknown ids or wrong secrets is refused from memory.
    attempt_keys = (f"client:{client_id[:64]}", f"source:{_source_address()}")
    attempts = services.rate_limiter.credentials
    attempt = attempts.try_acquire(*attempt_keys)
    if not attempt.allowed:
        raise RateLimited(attempt)
    client = await _in_database_slot(state, _read_client, client_id)
    # No connection is held during the check: the read above is committed and closed. When the
    # secret checks are all taken, the caller is one of a flood of credential checks: refused
    # like any attempt beyond its limit (429, retry in a second), never a 5xx.
    try:
        await ARGON2_CHECKS.acquire()
    except Overloaded:
        raise RateLimited(RateDecision(False, ARGON2_CHECKS_CAPACITY, 0, Overloaded.retry_after)) from None
    try:
        matches, rehash = await anyio.to_thread.run_sync(
            verify_client_secret, client.secret_hash if client else None, secret
        )
    finally:
        ARGON2_CHECKS.release()
    if client is None or not matches or not client.enabled:
        return _error("invalid_client", "Client authentication failed")
    attempts.refund(*attempt_keys)
    if rehash:
        new_hash = await anyio.to_thread.run_sync(hash_secret, secret)
        await _in_database_slot(state, _rehash, client.client_id, new_hash)
    state.audit.organisation = client.organisation

    requested = list(dict.fromkeys(form.get("scope", "").split()))
    if not requested:
        return _error("invalid_scope", "Aucun scope demandé")
    # Legacy Pôle emploi clients (les-emplois) prefix their scopes with ``application_<id>``.
    held = {*client.scopes, f"application_{client.client_id}"}
    unknown = [scope for scope in requested if scope not in held]
    if unknown:
        return _error("invalid_scope", f"Unknown/invalid scope(s): [{', '.join(unknown)}]")

    token = issue_access_token(
        services.keys,
        issuer=services.settings.issuer,
        audience=services.settings.token_audience,
        client_id=client.client_id,
        organisation=client.organisation,
        scopes=requested,
        now=services.clock(),
        ttl=services.token_ttl,
    )
    body_out = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": services.settings.token_ttl_seconds,
        "scope": " ".join(requested),
    }
    return json_response(200, body_out, NO_STORE)


async def _in_database_slot(state: RequestState, work: Callable[..., T], *args: str) -> T:
    """Run ``work`` in a short unit of work of its own, within a database slot (see
    ``relais.core.db.Database.gate``), committed and closed before the slot is given back."""
    database = state.services.database

    def run() -> T:
        with database.transaction() as session:
            return work(session, *args)

    await database.gate.acquire()
    try:
        return await anyio.to_thread.run_sync(run)
    finally:
        database.gate.release()


def _read_client(session: Session, client_id: str) -> _ClientFacts | None:
    client = get_client(session, client_id)
    if client is None:
        return None
    organisation = session.get(Organisation, client.organisation_id)
    if organisation is None:
        return None
    return _ClientFacts(
        client_id=client.client_id,
        secret_hash=client.secret_hash,
        enabled=client.enabled,
        scopes=tuple(client.scopes),
        organisation=organisation.code,
    )


def _rehash(session: Session, client_id: str, new_hash: str) -> None:
    """Upgrade a hash made with outdated parameters (the old one kept working meanwhile)."""
    client = get_client(session, client_id)
    if client is not None:
        client.secret_hash = new_hash
        session.add(client)


def _source_address() -> str:
    peer = request.scope.get("client")
    return str(peer[0]) if peer else "unknown"


def _client_credentials(form: dict[str, str]) -> tuple[str, str]:
    """From the form (client_secret_post, France Travail's way) or HTTP Basic (RFC 6749)."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret)
    return form.get("client_id", ""), form.get("client_secret", "")


def _error(error: str, description: str) -> ConnexionResponse:
    note_refusal(f"oauth:{error}")
    return json_response(400, {"error": error, "error_description": description}, NO_STORE)
