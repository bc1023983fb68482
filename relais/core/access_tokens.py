"""OAuth2 access tokens: ES256-signed JWTs in the RFC 9068 profile (``typ: at+jwt``).

Time checks are done here against the caller's ``now`` rather than by pyjwt, which reads the
system clock: tests and replays need an injectable clock. Relais issues tokens for two
audiences, the partner APIs' and the admin APIs' (``TokenAudience``); ``verify_relais_token``
checks either with the deployment's settings, for the web shell's two bearer checks.

Keys follow their file (``relais.core.keys.latest_keyset``): tokens are signed with the current
key of the file as it is now (looked at every few seconds), and a token naming an unknown key
makes the process re-read the file (rate-limited) before it is refused, so that a key rotated
on one replica is accepted by the others without a restart.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from relais.core.config import Settings
from relais.core.keys import SIGNING_ALG, KeySet, latest_keyset

AT_JWT_TYPE = "at+jwt"
# RFC 9068 section 4 lets the media type be spelled in full.
_ACCEPTED_TYPES = {AT_JWT_TYPE, "application/" + AT_JWT_TYPE}
_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "client_id", "org", "scope"]


class InvalidAccessToken(Exception):
    """``reason`` is a short English code, safe to log and to count in metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def issue_access_token(
    keys: KeySet,
    *,
    issuer: str,
    audience: str,
    client_id: str,
    organisation: str,
    scopes: list[str],
    now: datetime,
    ttl: timedelta,
    subject: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """``subject`` defaults to the client; the admin console's tokens name an agent instead."""
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    if any(not scope or " " in scope for scope in scopes):
        raise ValueError("scopes must be non-empty and contain no space")
    issued_at = int(now.timestamp())
    claims = {
        "iss": issuer,
        "aud": audience,
        **(extra_claims or {}),
        "sub": subject or client_id,
        "client_id": client_id,
        "org": organisation,
        "scope": " ".join(scopes),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(ttl.total_seconds()),
        "jti": uuid.uuid4().hex,
    }
    key = latest_keyset(keys).current_signing_key
    return jwt.encode(claims, key.private_key, algorithm=SIGNING_ALG, headers={"kid": key.kid, "typ": AT_JWT_TYPE})


def verify_access_token(
    keys: KeySet,
    token: str,
    *,
    issuer: str,
    audience: str,
    now: datetime,
    leeway: timedelta,
    max_token_age: timedelta,
) -> dict[str, Any]:
    """Return the claims of a valid token, or raise :class:`InvalidAccessToken`.

    ``max_token_age`` is the longest lifetime of a token: a retired signing key keeps verifying
    that long after its retirement, then its tokens are refused as ``unknown_kid``.
    """
    header = _unverified_header(token)
    # The algorithm is pinned before any key is touched, which defeats "none" and the
    # HS256-with-public-key confusion.
    if header.get("alg") != SIGNING_ALG:
        raise InvalidAccessToken("bad_algorithm")
    if header.get("typ") not in _ACCEPTED_TYPES:
        raise InvalidAccessToken("bad_type")
    public_key = keys.verification_keys(now, max_token_age).get(header.get("kid", ""))
    if public_key is None:
        raise InvalidAccessToken("unknown_kid")
    claims = _decode(token, public_key, issuer=issuer, audience=audience)
    check_times(claims, now.timestamp(), leeway.total_seconds())
    return claims


class TokenAudience(enum.Enum):
    """Whom a Relais token is for: a partner client's software, or an agent on the admin APIs."""

    PARTNER = "partner"
    ADMIN = "admin"


def verify_relais_token(
    keys: KeySet, settings: Settings, token: str, *, audience: TokenAudience, now: datetime
) -> dict[str, Any]:
    """The claims of a token Relais issued for ``audience``; raise :class:`InvalidAccessToken`.

    A partner token never opens an admin API, nor the other way round: each audience has its
    own ``aud`` value and its own longest lifetime (which bounds how long a retired key verifies).
    """
    if audience is TokenAudience.ADMIN:
        expected, max_age = settings.admin_audience, settings.admin_token_ttl_seconds
    else:
        expected, max_age = settings.token_audience, settings.token_ttl_seconds

    def verify(with_keys: KeySet) -> dict[str, Any]:
        return verify_access_token(
            with_keys,
            token,
            issuer=settings.issuer,
            audience=expected,
            now=now,
            leeway=timedelta(seconds=settings.token_leeway_seconds),
            max_token_age=timedelta(seconds=max_age),
        )

    try:
        return verify(keys)
    except InvalidAccessToken as exc:
        if exc.reason != "unknown_kid":
            raise
        # Perhaps signed by a key rotated since we loaded ours: look at the file again (at most
        # once per keys_reload_min_seconds, so forged kids cannot make us read it on every call).
        newer = latest_keyset(keys, min_interval=settings.keys_reload_min_seconds)
        if newer is keys:
            raise
        return verify(newer)


def _unverified_header(token: str) -> dict[str, Any]:
    if not isinstance(token, str):
        raise InvalidAccessToken("malformed")
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidAccessToken("malformed") from exc


def _decode(token: str, public_key: ec.EllipticCurvePublicKey, *, issuer: str, audience: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            public_key,
            algorithms=[SIGNING_ALG],
            audience=audience,
            issuer=issuer,
            options={
                "require": _REQUIRED_CLAIMS,
                "strict_aud": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidAccessToken(_reason(exc)) from exc


def _reason(exc: jwt.InvalidTokenError) -> str:
    # Subclasses first: InvalidSignatureError is a DecodeError.
    reasons: list[tuple[type[Exception], str]] = [
        (jwt.InvalidSignatureError, "bad_signature"),
        (jwt.InvalidAlgorithmError, "bad_algorithm"),
        (jwt.InvalidAudienceError, "bad_audience"),
        (jwt.InvalidIssuerError, "bad_issuer"),
        (jwt.MissingRequiredClaimError, "missing_claim"),
        (jwt.DecodeError, "malformed"),
    ]
    return next((reason for kind, reason in reasons if isinstance(exc, kind)), "bad_claim")


def check_times(claims: dict[str, Any], now: float, leeway: float) -> None:
    """Expiry and not-before of verified claims, at ``now`` (also for a token verified earlier)."""
    exp, nbf, iat = claims["exp"], claims["nbf"], claims["iat"]
    # Integers only, as issued: this also rules out the NaN and Infinity that json accepts.
    if not all(type(value) is int for value in (exp, nbf, iat)):
        raise InvalidAccessToken("bad_claim")
    if now >= exp + leeway:
        raise InvalidAccessToken("expired")
    if now + leeway < nbf or now + leeway < iat:
        raise InvalidAccessToken("not_yet_valid")


def jwks_document(keys: KeySet, now: datetime, max_token_age: timedelta) -> dict[str, list[dict[str, Any]]]:
    """Public keys a resource server needs to verify any live token, current key first."""
    return {
        "keys": [
            {**ECAlgorithm.to_jwk(public_key, as_dict=True), "kid": kid, "use": "sig", "alg": SIGNING_ALG}
            for kid, public_key in latest_keyset(keys).verification_keys(now, max_token_age).items()
        ]
    }
