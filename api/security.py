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
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from weakref import WeakKeyDictionary

import anyio
import jwt
from connexion.exceptions import BadRequestProblem
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from sqlmodel import Session, select

from api.context import RequestState, current_request
from api.errors import AgentForbidden, note_refusal
from api.pipeline import hold_database_slot
from api.resolver import contract_operation_id
from habilitations.policy import Decision, decide
from habilitations.policy_cache import VERSION_QUERY, VersionedCache, current_version
from parcours.perimeter import perimetre_of
from parcours.ports import Perimetre
from relais.core import agent_headers
from relais.core.access_tokens import InvalidAccessToken, TokenAudience, check_times, verify_relais_token
from relais.core.config import Settings
from relais.core.db import Database, wrote
from relais.core.french_dates import local_date
from relais.core.jeton import JETON_HEADER, JetonError, open_jeton
from relais.core.keys import KeySet
from relais.core.ratelimit import Overloaded, RateDecision, RateLimiter
from relais.core.tables import Client, Organisation
from specs import load_document, served_documents

AGENT_HEADER = agent_headers.IDENTIFIANT
# Operations whose handler calls ``hold_database_slot()`` itself before it opens the call's
# unit of work: when memory answers the policy check, they take no slot for reads done
# without the pooled connection (``api.partner.rechercher_usager``), so they keep flowing
# while a group commit of audit events waits for the disk.
SELF_SLOTTED = frozenset(
    f"api.partner.rechercher_usager.{operation}"
    for operation in ("RechercherUsagerParNumeroFranceTravail", "RechercherUsagerParDateNaissanceEtNir")
)


@dataclass(frozen=True)
class ClientRights:
    """What the decision needs of the client, as read under one policy version (a plain
    snapshot: it outlives the session that read it)."""

    organisation: str
    organisation_id: int
    client_id: str
    scopes: frozenset[str]
    rate_limit_per_second: int
    # The organisation's reach, for the handlers' perimeter checks (``caller_of``).
    perimetre: Perimetre


@dataclass(frozen=True)
class _AgentCheck:
    """The habilitation question a call asks, worked out before any database work."""

    identifiant: str
    api: str
    required: tuple[str, ...]


@dataclass
class _Authorization:
    rights: ClientRights | None
    decision: Decision | None = None


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
        claims = _verified_claims(services.keys, services.settings, token, services.clock())
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
    required = tuple(sorted(set(required_scopes or ())))
    claimed = frozenset(str(claims.get("scope", "")).split())
    # What the agent check would ask or answer needs no database: worked out first, so that
    # the client and the habilitation are judged in one thread hop, in one transaction.
    agent = _agent_question(request, routing, required)
    # A client seen for the first time in this process is rate-checked before its agent is judged.
    ask = agent if isinstance(agent, _AgentCheck) and known_limit is not None else None
    found = await _authorize_from_memory(state, client_id, claimed, ask)
    # The call's database slot, before any database work: now, unless memory answered and the
    # handler takes the slot itself only if it needs the pooled connection (SELF_SLOTTED).
    if found is None or routing.get("operation_id") not in SELF_SLOTTED:
        await hold_database_slot()
    if found is None:
        found = await anyio.to_thread.run_sync(_authorize, state, client_id, claimed, ask)
    rights = found.rights
    if rights is None:
        note_refusal("invalid_token:client_disabled")
        return None
    state.audit.organisation = rights.organisation
    state.perimetre = rights.perimetre
    _known_limits[client_id] = rights.rate_limit_per_second
    if known_limit is None:
        _check_rate(services.rate_limiter, client_id, api, rights.rate_limit_per_second)
    scopes = [scope for scope in str(claims.get("scope", "")).split() if scope in rights.scopes]
    # A token that does not cover the operation is refused by connexion right after us.
    if set(required) <= set(scopes):
        decision = found.decision
        if decision is None and isinstance(agent, _AgentCheck):
            decision = await anyio.to_thread.run_sync(_decide, state, rights, agent)
        _apply_agent_answer(state, request, agent, decision)
    return {"sub": client_id, "scope": scopes, "client_id": client_id, "org": rights.organisation}


@dataclass(frozen=True)
class _VerifiedToken:
    kid: str
    # The key that verified it, and what it was verified against: a key set or settings
    # swapped since (a rotation, another app in the same process) means verifying again.
    signing_key: object
    issuer: str
    audience: str
    claims: dict[str, Any]


# Access token → its claims, once its signature verified: a client sends the same token for
# ~25 minutes, and an ECDSA check is the costliest step of a call. Expiry, not-before and the
# key's own lifetime are still checked on every call below; revoking the client is the policy
# check's job (the client is re-read whenever anything changed). Bounded like the limits below.
_verified: dict[str, _VerifiedToken] = {}
_MAX_VERIFIED = 10_000


def _verified_claims(keys: KeySet, settings: Settings, token: str, now: datetime) -> dict[str, Any]:
    leeway = settings.token_leeway_seconds
    max_age = timedelta(seconds=settings.token_ttl_seconds)
    known = _verified.get(token)
    if known is not None:
        claims = known.claims
        moment = now.timestamp()
        if _live_key(keys, known.kid, now, max_age) is not known.signing_key or (
            known.issuer,
            known.audience,
        ) != (settings.issuer, settings.token_audience):
            _verified.pop(token, None)
        else:
            check_times(claims, moment, leeway)
            return claims
    claims = verify_relais_token(keys, settings, token, audience=TokenAudience.PARTNER, now=now)
    kid = jwt.get_unverified_header(token).get("kid")
    # Remembered only when verified by our own key set (a token of a key rotated since we
    # loaded ours is verified in full each time, until the app's key set is the new one).
    signing_key = _live_key(keys, kid, now, max_age) if isinstance(kid, str) else None
    if isinstance(kid, str) and signing_key is not None:
        if len(_verified) >= _MAX_VERIFIED:
            _verified.clear()
        _verified[token] = _VerifiedToken(kid, signing_key, settings.issuer, settings.token_audience, claims)
    return claims


def _live_key(keys: KeySet, kid: str, now: datetime, max_age: timedelta) -> object | None:
    """The signing key of that kid, while tokens it signed may still be alive (as
    ``KeySet.verification_keys`` has it); None once retired for longer than a token lives."""
    for key in keys.signing_keys:
        if key.kid == kid:
            return key if key.retired_at is None or key.retired_at + max_age > now else None
    return None


# client id → its rate limit as last read. Only ids from tokens we signed get here: bounded.
_known_limits: dict[str, int] = {}


def _check_rate(limiter: RateLimiter, client_id: str, api: str, capacity: int) -> None:
    decision = limiter.hit(client_id, api, capacity)
    if not decision.allowed:
        raise RateLimited(decision)


# The agent check's outcomes that need no database.
_SPEC_ANSWERS = "spec"  # the spec requires the header: its validation answers 400 naming it
_BAD_HEADER = "bad_header"  # declared header holding only blanks: 400
_NO_AGENT = "agent_absent"  # undeclared and unusable: 403
_UNKNOWN_API = "api_inconnue"


def _agent_question(request: ConnexionRequest, routing: dict[str, Any], required: tuple[str, ...]) -> _AgentCheck | str:
    base_path = str(routing.get("api_base_path", ""))
    operation = contract_operation_id(str(routing.get("operation_id", "")))
    identifiant = request.headers.get(AGENT_HEADER)
    declared = (base_path, operation) in _operations_with_agent_header()
    if identifiant is None and declared:
        return _SPEC_ANSWERS
    if not _usable(identifiant):
        # Never leave without a decision: a value the schema lets through (only blanks such as
        # U+00A0) would otherwise reach the data with no agent at all.
        return _BAD_HEADER if declared else _NO_AGENT
    assert identifiant is not None
    api = _api_names().get(base_path)
    if api is None:
        return _UNKNOWN_API
    return _AgentCheck(identifiant, api, required)


def _apply_agent_answer(
    state: RequestState, request: ConnexionRequest, agent: _AgentCheck | str, decision: Decision | None
) -> None:
    if agent == _SPEC_ANSWERS:
        return
    if agent == _BAD_HEADER:
        raise BadRequestProblem(detail=f"{AGENT_HEADER} invalide")
    if agent == _NO_AGENT:
        note_refusal("agent_absent")
        _note_usager(state, request)
        raise AgentForbidden("agent_absent")
    if agent == _UNKNOWN_API:
        _note_usager(state, request)
        raise AgentForbidden("api_inconnue")
    assert decision is not None
    if not decision.allowed:
        _note_usager(state, request)
        raise AgentForbidden(decision.reason or "agent_non_habilite")
    draft = state.audit
    draft.agent_id = decision.agent_id
    draft.habilitation_id = decision.habilitation_id
    draft.scopes = " ".join(decision.scopes)
    draft.purpose = decision.finalite


def _note_usager(state: RequestState, request: ConnexionRequest) -> None:
    """A refused call that named an usager through its jeton is about that usager: its event
    says so, so that « qui a consulté mon dossier » counts refused attempts too. Only a jeton
    this very client may open names anyone; any other is ignored here (never an error: the
    call is refused already)."""
    jeton = request.headers.get(JETON_HEADER)
    if not jeton or not state.audit.client_id:
        return
    try:
        state.audit.usager_id = open_jeton(
            state.services.keys, jeton, client_id=state.audit.client_id, now=state.services.clock()
        )
    except JetonError:
        return


@dataclass
class _PolicyCaches:
    """Per database (an app serves one; tests run several in one process)."""

    clients: VersionedCache[ClientRights] = field(default_factory=VersionedCache)
    decisions: VersionedCache[Decision] = field(default_factory=VersionedCache)


_caches: WeakKeyDictionary[Database, _PolicyCaches] = WeakKeyDictionary()


def policy_caches(database: Database) -> _PolicyCaches:
    caches = _caches.get(database)
    if caches is None:
        caches = _caches[database] = _PolicyCaches()
    return caches


async def _authorize_from_memory(
    state: RequestState, client_id: str, claimed: frozenset[str], agent: _AgentCheck | None
) -> _Authorization | None:
    """The same answer as ``_authorize`` when memory holds it under the current version, read
    without a thread hand-off (``Database.loop_reader``); None otherwise. Nothing is decided
    here that the rows were not judged on before."""
    if agent is None:
        return None
    database = state.services.database
    if database.loop_reader is None:
        return None
    value = await database.loop_reader.scalar(VERSION_QUERY)
    if value is None:
        return None
    version = int(value)
    caches = policy_caches(state.services.database)
    rights = caches.clients.get(client_id, version)
    if rights is None or not set(agent.required) <= (claimed & rights.scopes):
        return None
    key = (rights.client_id, agent.identifiant, agent.api, agent.required)
    decision = caches.decisions.get(key, version, local_date(state.services.clock()))
    if decision is None:
        return None
    state.policy_version = version
    return _Authorization(rights, decision)


def _authorize(
    state: RequestState, client_id: str, claimed: frozenset[str], agent: _AgentCheck | None
) -> _Authorization:
    """The client's rights and, when asked and the token covers it, the agent's decision:
    one version read, then memory, or the rows when anything changed since."""
    session = state.session()
    caches = policy_caches(state.services.database)
    # Read first, before the rows it vouches for: what is remembered under it is at least as
    # recent as it, and any later change comes with a higher version.
    version = state.policy_version = current_version(session)
    rights = caches.clients.get(client_id, version)
    if rights is None:
        rights = _client_rights(state, session, client_id)
        if rights is not None:
            caches.clients.put(client_id, version, rights)
    found = _Authorization(rights)
    if rights is not None and agent is not None and set(agent.required) <= (claimed & rights.scopes):
        found.decision = _decide(state, rights, agent)
    return found


def _decide(state: RequestState, rights: ClientRights, agent: _AgentCheck) -> Decision:
    session = state.session()
    caches = policy_caches(state.services.database)
    version = state.policy_version
    now = state.services.clock()
    day = local_date(now)
    key = (rights.client_id, agent.identifiant, agent.api, agent.required)
    remembered = caches.decisions.get(key, version, day)
    if remembered is not None:
        return remembered
    client = session.exec(select(Client).where(Client.client_id == rights.client_id)).one()
    decision = decide(
        session,
        client=client,
        identifiant=agent.identifiant,
        api=agent.api,
        required_scopes=agent.required,
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    # Remembered only when deciding wrote nothing: the day's first call records the agent's
    # activity, and should that call fail and roll back, the next one must record it again.
    if decision.allowed and not wrote(session):
        caches.decisions.put(key, version, decision, day)
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


def _client_rights(state: RequestState, session: Session, client_id: str) -> ClientRights | None:
    # Read in the request's own transaction: one transaction per call, audit included.
    # The client and its organisation in one query; a disabled client is no client.
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
    perimetre = perimetre_of(organisation)
    assert perimetre is not None
    return ClientRights(
        organisation=organisation.code,
        organisation_id=perimetre.organisation_id,
        client_id=client.client_id,
        scopes=frozenset(client.scopes),
        rate_limit_per_second=client.rate_limit_per_second or state.services.settings.rate_limit_per_second,
        perimetre=perimetre,
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
    """No database slot or argon2 check freed within a second, or no pooled connection within
    the pool's timeout (SQLAlchemy's ``TimeoutError``): 503 at once, with Retry-After."""
    if not isinstance(exc, Overloaded):
        exc = Overloaded()
    note_refusal("overloaded")
    return ConnexionResponse(
        status_code=503,
        mimetype="text/plain",
        content_type="text/plain",
        body="Service momentanément surchargé, réessayez dans une seconde".encode(),
        headers={"Retry-After": str(exc.retry_after)},
    )
