"""Access-token check for every partner operation (the specs' ``x-tokenInfoFunc``).

connexion then compares the scopes returned here with those the operation declares and
answers 403 when one is missing. The client is re-read on every call so that disabling a
client or withdrawing a scope applies to the very next request, not when tokens expire: read
once per call (with its organisation, in one query), in the call's own transaction, and that
same row is the one the habilitation decision then judges.

When the token covers the operation, the agent named by ``pa-identifiant-agent`` must hold
a habilitation for it (``habilitations.policy``): otherwise a 403 in the API's own format,
audited with the reason. The audit event records the agent and the habilitation used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import anyio
from connexion.exceptions import BadRequestProblem
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from sqlmodel import select

from api.context import RequestState, current_request
from api.errors import AgentForbidden, note_refusal
from api.pipeline import hold_database_slot
from api.resolver import contract_operation_id
from habilitations.policy import Decision, decide
from relais.core.access_tokens import InvalidAccessToken, TokenAudience, verify_relais_token
from relais.core.ratelimit import Overloaded, RateDecision, RateLimiter
from relais.core.tables import Client, Organisation
from specs import load_document, served_documents

AGENT_HEADER = "pa-identifiant-agent"


@dataclass(frozen=True)
class ClientRights:
    organisation: str
    scopes: frozenset[str]
    rate_limit_per_second: int
    # The row read for this call, handed to the habilitation decision so that it is not read
    # again (same transaction, same request: a later revocation applies to the next call).
    client: Client = field(compare=False, repr=False)


class RateLimited(Exception):
    def __init__(self, decision: RateDecision) -> None:
        super().__init__("rate limited")
        self.decision = decision


async def token_info(
    token: str, request: ConnexionRequest, required_scopes: list[str] | None = None
) -> dict[str, Any] | None:
    state = current_request()
    services = state.services
    try:
        claims = verify_relais_token(
            services.keys, services.settings, token, audience=TokenAudience.PARTNER, now=services.clock()
        )
    except InvalidAccessToken as exc:
        note_refusal(f"invalid_token:{exc.reason}")
        return None
    client_id = str(claims["sub"])
    state.audit.client_id = client_id
    routing = request.scope.get("extensions", {}).get("connexion_routing", {})
    api = str(routing.get("api_base_path", ""))
    # The limit is counted before any database work, with the client's limit as last read
    # (a signed token names the client): calls beyond it are refused from memory, and a
    # flood by one client never queues the others' calls on the database.
    known_limit = _known_limits.get(client_id)
    if known_limit is not None:
        _check_rate(services.rate_limiter, client_id, api, known_limit)
    await hold_database_slot()
    rights = await anyio.to_thread.run_sync(_client_rights, state, client_id)
    if rights is None:
        note_refusal("invalid_token:client_disabled")
        return None
    state.audit.organisation = rights.organisation
    _known_limits[client_id] = rights.rate_limit_per_second
    if known_limit is None:
        _check_rate(services.rate_limiter, client_id, api, rights.rate_limit_per_second)
    scopes = [scope for scope in str(claims.get("scope", "")).split() if scope in rights.scopes]
    required = sorted(set(required_scopes or ()))
    # A token that does not cover the operation is refused by connexion right after us.
    if set(required) <= set(scopes):
        await _check_agent(state, request, routing, rights.client, required)
    return {"sub": client_id, "scope": scopes, "client_id": client_id, "org": rights.organisation}


# client id → its rate limit as last read. Only ids from tokens we signed get here: bounded.
_known_limits: dict[str, int] = {}


def _check_rate(limiter: RateLimiter, client_id: str, api: str, capacity: int) -> None:
    decision = limiter.hit(client_id, api, capacity)
    if not decision.allowed:
        raise RateLimited(decision)


async def _check_agent(
    state: RequestState, request: ConnexionRequest, routing: dict[str, Any], client: Client, required: list[str]
) -> None:
    base_path = str(routing.get("api_base_path", ""))
    operation = contract_operation_id(str(routing.get("operation_id", "")))
    identifiant = request.headers.get(AGENT_HEADER)
    declared = (base_path, operation) in _operations_with_agent_header()
    if identifiant is None and declared:
        return  # the spec requires the header: its validation answers 400 naming it
    if not _usable(identifiant):
        # Never leave without a decision: a value the schema lets through (only blanks such as
        # U+00A0) would otherwise reach the data with no agent at all.
        if declared:
            raise BadRequestProblem(detail=f"{AGENT_HEADER} invalide")
        note_refusal("agent_absent")
        raise AgentForbidden("agent_absent")
    assert identifiant is not None
    api = _api_names().get(base_path)
    if api is None:
        raise AgentForbidden("api_inconnue")
    decision = await anyio.to_thread.run_sync(_decide, state, client, identifiant, api, required)
    if not decision.allowed:
        raise AgentForbidden(decision.reason or "agent_non_habilite")
    draft = state.audit
    draft.agent_id = decision.agent_id
    draft.habilitation_id = decision.habilitation_id
    draft.scopes = " ".join(decision.scopes)
    draft.purpose = decision.finalite


def _decide(state: RequestState, client: Client, identifiant: str, api: str, required: list[str]) -> Decision:
    # ``client`` is the enabled row ``_client_rights`` read a moment ago in this transaction.
    session = state.session()
    decision = decide(
        session,
        client=client,
        identifiant=identifiant,
        api=api,
        required_scopes=required,
        now=state.services.clock(),
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    if decision.suspended_now:
        # The suspension stands although this call is refused (a refused call's own work is
        # rolled back by the pipeline): nothing else was written in this transaction yet.
        session.commit()
    return decision


def _usable(identifiant: str | None) -> bool:
    return identifiant is not None and bool(identifiant.strip()) and len(identifiant) <= 100 and "|" not in identifiant


@cache
def _api_names() -> dict[str, str]:
    """Base path → the API's name in habilitations and subscriptions (its spec file's stem)."""
    return {base: name.removesuffix(".yaml") for name, _, base in served_documents()}


@cache
def _operations_with_agent_header() -> frozenset[tuple[str, str]]:
    """(base path, operationId) of the operations whose spec requires ``pa-identifiant-agent``."""
    found: set[tuple[str, str]] = set()
    for name, _, base in served_documents():
        for item in (load_document(name).get("paths") or {}).values():
            shared = item.get("parameters") or []
            for method, operation in item.items():
                if method == "parameters" or not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                if any(_is_agent_header(p) for p in [*shared, *(operation.get("parameters") or [])]):
                    found.add((base, str(operation["operationId"])))
    return frozenset(found)


def _is_agent_header(parameter: Any) -> bool:
    if not isinstance(parameter, dict):
        return False
    reference = str(parameter.get("$ref", ""))
    return reference.endswith("/PaIdentifiantAgent") or str(parameter.get("name", "")).lower() == AGENT_HEADER


def _client_rights(state: RequestState, client_id: str) -> ClientRights | None:
    # Read in the request's own transaction: one transaction per call, audit included.
    # The client and its organisation in one query; a disabled client is no client.
    session = state.session()
    row = session.exec(
        select(Client, Organisation)
        .join(Organisation, Organisation.id == Client.organisation_id)  # type: ignore[arg-type]
        .where(Client.client_id == client_id)
    ).first()
    if row is None:
        return None
    client, organisation = row
    if not client.enabled:
        return None
    return ClientRights(
        organisation=organisation.code,
        scopes=frozenset(client.scopes),
        rate_limit_per_second=client.rate_limit_per_second or state.services.settings.rate_limit_per_second,
        client=client,
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


async def handle_overloaded(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """No database slot or argon2 check freed within a second: 503 at once, with Retry-After."""
    assert isinstance(exc, Overloaded)
    note_refusal("overloaded")
    return ConnexionResponse(
        status_code=503,
        mimetype="text/plain",
        content_type="text/plain",
        body="Service momentanément surchargé, réessayez dans une seconde".encode(),
        headers={"Retry-After": str(exc.retry_after)},
    )
