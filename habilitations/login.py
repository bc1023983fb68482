"""Agent login through ProConnect (OpenID Connect), ending in a Relais admin token.

The flow is the authorization code flow with PKCE (S256), ``state`` and ``nonce``:

1. ``start_login`` records a login attempt (hashed ``state``, ``nonce``, PKCE verifier, 10
   minutes) and gives the ProConnect authorization URL, asking for a multi-factor ``acr``;
2. ``consume_attempt`` finds the attempt again from the callback's ``state``: once only,
   before expiry, whatever comes of the login next;
3. ``exchange_code`` trades the code for tokens; ``verify_id_token`` checks the ID token's
   signature against the provider's JWKS, then iss, aud, exp, iat, nonce, and ``acr``
   against the accepted set (ProConnect asks relying parties to re-check it server side);
   ``verify_userinfo`` checks the userinfo answer, a signed JWT, the same way;
4. ``admit_agent`` maps the identity to an active ``Agent`` (by ``sub``, or on first login
   by e-mail among the agents of the organisation owning the SIRET) and records the login
   as the agent's last activity.

Nothing here logs or puts in an error the code, a token, an e-mail or a name: refusals
(``habilitations.refusals.LoginRefused``) carry a reason code for the audit trail and a
generic French message for the person. The SIRET directory is ``habilitations.sirets``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from habilitations.agent_states import suspend_for_inactivity
from habilitations.inactivity import inactivity_due_date, is_overdue
from habilitations.login_models import LoginAttempt, OrganisationSiret
from habilitations.models import ACTIF, HUMAIN, Agent
from habilitations.refusals import LoginRefused
from habilitations.sirets import SIRET_PATTERN
from relais.core.auditing import AuditRecorder
from relais.core.config import Settings
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

# ProConnect requires ``state`` and ``nonce`` of at least 32 characters; 32 random bytes
# give 43 URL-safe characters.
RANDOM_BYTES = 32
# RFC 7636: a verifier of 43 to 128 characters.
CODE_VERIFIER_LENGTH = 64
# Allowed clock skew between ProConnect and Relais when checking exp and iat.
LEEWAY_SECONDS = 60
# A reason code from the provider's ``error`` parameter, kept only if it looks like one.
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
_AMR = re.compile(r"^[a-z0-9_-]{1,16}$")

MESSAGE_NOT_CONFIGURED = "La connexion des agents par ProConnect n'est pas configurée sur ce Relais"
MESSAGE_BAD_STATE = "Connexion inconnue, expirée ou déjà utilisée : recommencez la connexion"
MESSAGE_NOT_VERIFIED = "L'authentification ProConnect n'a pas pu être vérifiée : recommencez la connexion"
MESSAGE_PROVIDER_DOWN = "ProConnect ne répond pas ou répond en erreur : réessayez plus tard"
MESSAGE_NO_ACCOUNT = (
    "Aucun compte actif ne correspond à cette identité sur Relais : "
    "contactez le référent de gestion des comptes (RGC) de votre organisation"
)


def message_acr(accepted: list[str]) -> str:
    return (
        "Authentification multifacteur requise : connectez-vous à ProConnect avec une double "
        f"authentification (niveaux acceptés : {', '.join(accepted)})"
    )


# The kinds of login refusal (``LoginRefused``, in ``habilitations.refusals``):
# - UNKNOWN: the login attempt the callback names is unknown, expired or already used;
# - INVALID: what ProConnect sent could not be verified (signature, claims, code);
# - FORBIDDEN: verified, but no active account, or not a multi-factor level Relais accepts;
# - UNAVAILABLE: ProConnect does not answer, or answers in error.


def bad_state(reason: str) -> LoginRefused:
    return LoginRefused(RefusalKind.UNKNOWN, "CONNEXION_INVALIDE", MESSAGE_BAD_STATE, reason=reason)


def not_verified(reason: str) -> LoginRefused:
    return LoginRefused(RefusalKind.INVALID, "AUTHENTIFICATION_NON_VERIFIEE", MESSAGE_NOT_VERIFIED, reason=reason)


def provider_unavailable(reason: str) -> LoginRefused:
    return LoginRefused(RefusalKind.UNAVAILABLE, "PROCONNECT_INDISPONIBLE", MESSAGE_PROVIDER_DOWN, reason=reason)


def no_account(reason: str, *, keep_writes: bool = False) -> LoginRefused:
    return LoginRefused(
        RefusalKind.FORBIDDEN, "COMPTE_NON_AUTORISE", MESSAGE_NO_ACCOUNT, reason=reason, keep_writes=keep_writes
    )


def is_configured(settings: Settings) -> bool:
    return all(
        (
            settings.proconnect_issuer,
            settings.proconnect_client_id,
            settings.proconnect_client_secret,
            settings.proconnect_redirect_uri,
        )
    )


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# Provider metadata ---------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """What discovery tells about ProConnect, and its current signing keys."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


def http_client(settings: Settings) -> httpx.AsyncClient:
    # No redirects: an OIDC endpoint answers directly, and following one would send the
    # client secret or an access token wherever it points.
    return httpx.AsyncClient(timeout=settings.proconnect_timeout_seconds, follow_redirects=False)


async def _get_json(client: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise provider_unavailable(f"{what}_unreachable:{type(exc).__name__}") from None
    if response.status_code != 200:
        raise provider_unavailable(f"{what}_status:{response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise provider_unavailable(f"{what}_not_json") from None
    if not isinstance(document, dict):
        raise provider_unavailable(f"{what}_not_object")
    return document


async def discover(client: httpx.AsyncClient, settings: Settings) -> Provider:
    issuer = settings.proconnect_issuer.rstrip("/")
    document = await _get_json(client, f"{issuer}/.well-known/openid-configuration", "discovery")
    # OpenID Connect Discovery §4.3: the document must name the issuer it was fetched from.
    if document.get("issuer") != issuer:
        raise provider_unavailable("discovery_issuer_mismatch")
    try:
        return Provider(
            issuer=issuer,
            authorization_endpoint=_https_or_local(document["authorization_endpoint"]),
            token_endpoint=_https_or_local(document["token_endpoint"]),
            userinfo_endpoint=_https_or_local(document["userinfo_endpoint"]),
            jwks_uri=_https_or_local(document["jwks_uri"]),
            end_session_endpoint=(
                _https_or_local(document["end_session_endpoint"]) if document.get("end_session_endpoint") else None
            ),
        )
    except (KeyError, TypeError, ValueError):
        raise provider_unavailable("discovery_incomplete") from None


def _https_or_local(url: Any) -> str:
    if not isinstance(url, str):
        raise TypeError("endpoint is not a string")
    if url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        return url
    raise ValueError("endpoint is neither https nor local")


async def fetch_keys(client: httpx.AsyncClient, provider: Provider) -> KeySet:
    document = await _get_json(client, provider.jwks_uri, "jwks")
    try:
        # Public keys only: a JWKS carrying a symmetric key could let anyone sign.
        keys = [key for key in document.get("keys", []) if key.get("kty") in ("RSA", "EC")]
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, TypeError, ValueError, AttributeError):
        raise provider_unavailable("jwks_invalid") from None


# 1. Start --------------------------------------------------------------------------------


def start_login(session: Session, settings: Settings, provider: Provider, now: datetime) -> str:
    """Record a login attempt and return the authorization URL to send the browser to."""
    state = secrets.token_urlsafe(RANDOM_BYTES)
    nonce = secrets.token_urlsafe(RANDOM_BYTES)
    code_verifier = generate_token(CODE_VERIFIER_LENGTH)
    session.add(
        LoginAttempt(
            state_hash=state_hash(state),
            nonce=nonce,
            code_verifier=code_verifier,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.proconnect_login_ttl_seconds),
        )
    )
    # Attempts left unfinished are of no use once expired.
    session.execute(delete(LoginAttempt).where(col(LoginAttempt.expires_at) < now - timedelta(days=1)))
    # The accepted levels are asked for as essential; they are checked again on return.
    # ProConnect sends ``amr`` (pwd, otp, mfa...) only when asked: kept in the audit trail.
    claims = {
        "id_token": {
            "acr": {"essential": True, "values": settings.proconnect_accepted_acr},
            "amr": {"essential": True},
        }
    }
    return str(
        prepare_grant_uri(
            provider.authorization_endpoint,
            client_id=settings.proconnect_client_id,
            response_type="code",
            redirect_uri=settings.proconnect_redirect_uri,
            scope=settings.proconnect_scopes,
            state=state,
            nonce=nonce,
            claims=json.dumps(claims, separators=(",", ":")),
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
    )


# 2. Callback: the attempt ----------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    nonce: str
    code_verifier: str


def consume_attempt(session: Session, state: str, now: datetime) -> Attempt:
    """The attempt ``state`` designates, marked used in the caller's transaction.

    The conditional update is the single-use guard: of two callbacks racing with the same
    ``state``, one updates the row and the other finds it already used.
    """
    if len(state) < 32 or len(state) > 128:
        raise bad_state("login_state_unknown")
    key = state_hash(state)
    attempt = session.get(LoginAttempt, key)
    if attempt is None:
        raise bad_state("login_state_unknown")
    if attempt.used_at is not None:
        raise bad_state("login_state_replayed")
    consumed = session.execute(
        update(LoginAttempt)
        .where(col(LoginAttempt.state_hash) == key, col(LoginAttempt.used_at).is_(None))
        .values(used_at=now)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise bad_state("login_state_replayed")
    if _aware(attempt.expires_at) <= now:
        raise bad_state("login_state_expired")
    return Attempt(nonce=attempt.nonce, code_verifier=attempt.code_verifier)


def provider_error(error: str) -> LoginRefused:
    """The provider sent the person back with an error (refused consent, no 2FA...)."""
    code = error if _ERROR_CODE.match(error) else "other"
    return not_verified(f"provider_error:{code}")


# 3. Tokens -------------------------------------------------------------------------------


async def exchange_code(
    client: httpx.AsyncClient, settings: Settings, provider: Provider, code: str, code_verifier: str
) -> dict[str, Any]:
    """Trade the authorization code for tokens (client_secret_post, as ProConnect documents)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": settings.proconnect_redirect_uri,
        "client_id": settings.proconnect_client_id,
        "client_secret": settings.proconnect_client_secret,
        "code_verifier": code_verifier,
    }
    try:
        response = await client.post(provider.token_endpoint, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise provider_unavailable(f"token_unreachable:{type(exc).__name__}") from None
    if response.status_code in (400, 401):
        # invalid_grant: a code already used, expired (60 s) or not ours.
        raise not_verified(f"token_refused:{response.status_code}")
    if response.status_code != 200:
        raise provider_unavailable(f"token_status:{response.status_code}")
    try:
        tokens = response.json()
    except ValueError:
        raise not_verified("token_not_json") from None
    if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
        raise not_verified("token_without_id_token")
    if not isinstance(tokens.get("access_token"), str) or str(tokens.get("token_type", "")).lower() != "bearer":
        raise not_verified("token_without_access_token")
    return tokens


def _decode(value: str, keys: KeySet, settings: Settings, what: str) -> dict[str, Any]:
    """Claims of a JWT signed by one of the provider's keys with an accepted algorithm."""
    try:
        token = jwt.decode(value, keys, algorithms=settings.proconnect_signing_algorithms)
    except JoseError as exc:
        # bad_signature, unsupported_algorithm (alg "none", HS256...), decode_error...
        raise not_verified(f"{what}_invalid:{exc.error}") from None
    return dict(token.claims)


def _check_claims(claims: Mapping[str, Any], registry: jwt.JWTClaimsRegistry, what: str) -> None:
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError:
        raise not_verified(f"{what}_expired") from None
    except ClaimError as exc:
        raise not_verified(f"{what}_claim:{exc.claim}") from None


def verify_id_token(
    id_token: str, keys: KeySet, settings: Settings, provider: Provider, nonce: str, now: datetime
) -> dict[str, Any]:
    """The ID token's claims once signature, iss, aud, exp, iat and nonce hold."""
    claims = _decode(id_token, keys, settings, "id_token")
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": settings.proconnect_client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    _check_claims(claims, registry, "id_token")
    # OIDC Core §3.1.3.7: with several audiences, azp must be us.
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != settings.proconnect_client_id:
        raise not_verified("id_token_claim:azp")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
        raise not_verified("id_token_nonce_mismatch")
    return claims


def authentication_methods(claims: Mapping[str, Any]) -> list[str]:
    """The ID token's ``amr`` values (pwd, otp, mfa...), as far as they look like such codes."""
    value = claims.get("amr")
    if not isinstance(value, list):
        return []
    return [method for method in value if isinstance(method, str) and _AMR.match(method)][:8]


def check_acr(claims: Mapping[str, Any], settings: Settings) -> str:
    """The ID token's ``acr`` if it is a multi-factor level Relais accepts (else refused)."""
    acr = claims.get("acr")
    if not isinstance(acr, str) or acr not in settings.proconnect_accepted_acr:
        raise LoginRefused(
            RefusalKind.FORBIDDEN,
            "NIVEAU_AUTHENTIFICATION_INSUFFISANT",
            message_acr(settings.proconnect_accepted_acr),
            reason="acr_not_accepted",
        )
    return acr


async def fetch_userinfo(
    client: httpx.AsyncClient,
    keys: KeySet,
    settings: Settings,
    provider: Provider,
    access_token: str,
    subject: str,
    now: datetime,
) -> dict[str, Any]:
    """The userinfo claims, from a JWT signed by the provider (an unsigned answer is refused).

    ProConnect answers ``application/jwt`` when a signing algorithm was registered, which
    Relais requires: plain JSON could have been altered on the way by anyone able to.
    """
    try:
        response = await client.get(
            provider.userinfo_endpoint,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/jwt"},
        )
    except httpx.HTTPError as exc:
        raise provider_unavailable(f"userinfo_unreachable:{type(exc).__name__}") from None
    if response.status_code in (401, 403):
        raise not_verified(f"userinfo_refused:{response.status_code}")
    if response.status_code != 200:
        raise provider_unavailable(f"userinfo_status:{response.status_code}")
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/jwt":
        raise not_verified("userinfo_unsigned")
    claims = _decode(response.text.strip(), keys, settings, "userinfo")
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": settings.proconnect_client_id},
        sub={"essential": True, "value": subject},
    )
    _check_claims(claims, registry, "userinfo")
    return claims


# 4. The agent ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The ProConnect identity, as far as Relais needs it to find the agent."""

    sub: str
    email: str | None
    siret: str | None
    given_name: str | None
    usual_name: str | None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Identity:
        def text(name: str) -> str | None:
            value = claims.get(name)
            return value.strip() if isinstance(value, str) and value.strip() else None

        siret = text("siret")
        return cls(
            sub=str(claims["sub"]),
            email=text("email"),
            siret=siret if siret and SIRET_PATTERN.match(siret) else None,
            given_name=text("given_name"),
            usual_name=text("usual_name"),
        )


@dataclass(frozen=True)
class Admitted:
    agent_id: int
    organisation: str
    first_login: bool


def admit_agent(
    session: Session,
    identity: Identity,
    acr: str,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
) -> Admitted:
    """The active agent this identity is, with the login recorded as their last activity.

    Known ``sub`` first. Otherwise, on a first login, the one human agent of the SIRET's
    organisation with this e-mail and no ``sub`` yet; their ``sub`` is recorded then.
    Anyone else, and any agent who is not active, is refused: the reason (unknown,
    ambiguous, which state) goes to the audit trail only. An active agent past the two
    months of inactivity is suspended there and then (audited through ``recorder`` under the
    login's ``request_id``), and refused.
    """
    agent = session.exec(select(Agent).where(Agent.sub == identity.sub).with_for_update()).first()
    first_login = agent is None
    if agent is None:
        agent = _first_login_match(session, identity)
    if agent.type != HUMAIN:
        raise no_account("agent_not_human")
    if agent.etat != ACTIF:
        raise no_account(f"agent_{agent.etat}")
    assert agent.id is not None
    if is_overdue(agent, now):
        # A late sweep lets no one through, and a login must not reset the clock of an
        # agent already past the two months: suspended now (one transition event), refused.
        suspend_for_inactivity(
            session, agent.id, due=inactivity_due_date(agent), now=now, recorder=recorder, request_id=request_id
        )
        raise no_account("agent_inactivite", keep_writes=True)
    organisation = session.get(Organisation, agent.organisation_id)
    if organisation is None:
        raise no_account("agent_without_organisation")
    if not first_login and identity.siret:
        # A person known to ProConnect may act for several establishments: signing in for
        # one that belongs to another organisation must not open this organisation's account.
        elsewhere = session.exec(
            select(OrganisationSiret.organisation_id).where(OrganisationSiret.siret == identity.siret)
        ).first()
        if elsewhere is not None and elsewhere != agent.organisation_id:
            raise no_account("siret_other_organisation")
    if first_login:
        agent.sub = identity.sub
    if identity.siret:
        agent.siret = identity.siret
    agent.derniere_connexion = now
    agent.derniere_connexion_acr = acr
    # An accepted login is activity: the inactivity rule counts from here.
    agent.derniere_activite = now
    agent.updated_at = now
    agent.version += 1
    session.add(agent)
    session.flush()
    return Admitted(agent_id=agent.id, organisation=organisation.code, first_login=first_login)


def _first_login_match(session: Session, identity: Identity) -> Agent:
    if identity.siret is None or identity.email is None:
        raise no_account("identity_incomplete")
    organisation_id = session.exec(
        select(OrganisationSiret.organisation_id).where(OrganisationSiret.siret == identity.siret)
    ).first()
    if organisation_id is None:
        raise no_account("siret_unknown")
    candidates = session.exec(
        select(Agent)
        .where(
            Agent.organisation_id == organisation_id,
            Agent.type == HUMAIN,
            func.lower(Agent.email) == identity.email.lower(),
        )
        .with_for_update()
    ).all()
    if not candidates:
        raise no_account("agent_inconnu")
    if len(candidates) > 1:
        raise no_account("agent_ambiguous")
    agent = candidates[0]
    if agent.sub is not None:
        # The e-mail's agent already logged in as someone else: never re-bind silently.
        raise no_account("agent_sub_conflict")
    return agent


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# Logout ----------------------------------------------------------------------------------


def end_session_url(settings: Settings, provider: Provider, id_token: str) -> str:
    if provider.end_session_endpoint is None:
        raise provider_unavailable("end_session_not_offered")
    params: dict[str, str] = {"id_token_hint": id_token, "state": secrets.token_urlsafe(RANDOM_BYTES)}
    if settings.proconnect_post_logout_redirect_uri:
        params["post_logout_redirect_uri"] = settings.proconnect_post_logout_redirect_uri
    return str(httpx.URL(provider.end_session_endpoint, params=params))
