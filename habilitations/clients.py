"""Registry of the applications allowed to call the partner APIs (OAuth2 client credentials).

Secrets are never stored: only their argon2id hash (argon2-cffi defaults, so that a library
upgrade strengthening the defaults is picked up by ``needs_rehash`` at the next login).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from functools import cache
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from relais.core.tables import Client, Organisation, utcnow

Outcome = Literal["created", "updated", "unchanged"]

CLIENT_ID_MAX_LENGTH = 64
# 32 random bytes, about 43 URL-safe characters.
SECRET_BYTES = 32

_hasher = PasswordHasher()


class ClientRegistryError(ValueError):
    """A client registry request that cannot be honoured. The message is French."""


@cache
def _dummy_hash() -> str:
    # Hashed once per process, on first use, so that importing the module stays cheap.
    return _hasher.hash(secrets.token_urlsafe(SECRET_BYTES))


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def _verify(secret_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def get_client(session: Session, client_id: str) -> Client | None:
    return session.exec(select(Client).where(Client.client_id == client_id)).first()


def get_active_client(session: Session, client_id: str) -> Client | None:
    """The client if it exists and is enabled, else None."""
    client = get_client(session, client_id)
    return client if client is not None and client.enabled else None


def create_client(
    session: Session,
    *,
    client_id: str,
    organisation_code: str,
    scopes: Iterable[str],
    secret: str | None = None,
    enabled: bool = True,
    rate_limit_per_second: int | None = None,
    national: bool = False,
) -> tuple[Client, str]:
    """Register a new client and return it with its clear secret, which is never shown again.

    A strong secret is generated when none is given. The caller commits the session.
    """
    _check_client_id(client_id)
    if get_client(session, client_id) is not None:
        raise ClientRegistryError(f"Le client « {client_id} » existe déjà")
    clear_secret = secret if secret is not None else secrets.token_urlsafe(SECRET_BYTES)
    _check_secret(clear_secret)
    client = Client(
        client_id=client_id,
        secret_hash=hash_secret(clear_secret),
        organisation_id=_organisation_id(session, organisation_code),
        scopes=_clean_scopes(scopes),
        enabled=enabled,
        rate_limit_per_second=_check_rate_limit(rate_limit_per_second),
        national=national,
    )
    session.add(client)
    session.flush()
    return client, clear_secret


def upsert_client(
    session: Session,
    *,
    client_id: str,
    organisation_code: str,
    scopes: Iterable[str],
    secret: str,
    enabled: bool = True,
    rate_limit_per_second: int | None = None,
    national: bool = False,
) -> tuple[Client, Outcome]:
    """Create or align a client with the given facts (used by ``relais import``).

    The secret is re-hashed only when it changed, so that importing the same file twice
    leaves the row untouched. The caller commits the session.
    """
    existing = get_client(session, client_id)
    if existing is None:
        client, _ = create_client(
            session,
            client_id=client_id,
            organisation_code=organisation_code,
            scopes=scopes,
            secret=secret,
            enabled=enabled,
            rate_limit_per_second=rate_limit_per_second,
            national=national,
        )
        return client, "created"
    _check_secret(secret)
    wanted = {
        "organisation_id": _organisation_id(session, organisation_code),
        "scopes": _clean_scopes(scopes),
        "enabled": enabled,
        "rate_limit_per_second": _check_rate_limit(rate_limit_per_second),
        "national": national,
    }
    changed = False
    for field, value in wanted.items():
        if getattr(existing, field) != value:
            setattr(existing, field, value)
            changed = True
    if not _verify(existing.secret_hash, secret) or _hasher.check_needs_rehash(existing.secret_hash):
        existing.secret_hash = hash_secret(secret)
        changed = True
    if not changed:
        return existing, "unchanged"
    existing.updated_at = utcnow()
    session.add(existing)
    session.flush()
    return existing, "updated"


def authenticate_client(session: Session, client_id: str, secret: str) -> Client | None:
    """The enabled client whose secret matches, else None.

    An unknown client still costs one argon2 verification, so that response time does not
    tell which client ids exist. A hash made with outdated parameters is upgraded in the
    session; the caller commits it (or not: the old hash keeps working).
    """
    client = get_client(session, client_id) if client_id else None
    matches = _verify(client.secret_hash if client is not None else _dummy_hash(), secret)
    if client is None or not matches or not client.enabled:
        return None
    if _hasher.check_needs_rehash(client.secret_hash):
        client.secret_hash = hash_secret(secret)
        session.add(client)
    return client


def _organisation_id(session: Session, code: str) -> int:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if organisation is None or organisation.id is None:
        raise ClientRegistryError(f"Organisation inconnue : « {code} »")
    return organisation.id


def _check_client_id(client_id: str) -> None:
    if not 1 <= len(client_id) <= CLIENT_ID_MAX_LENGTH or not client_id.isprintable() or " " in client_id:
        raise ClientRegistryError(
            f"Identifiant de client invalide : 1 à {CLIENT_ID_MAX_LENGTH} caractères imprimables, sans espace"
        )


def _check_secret(secret: str) -> None:
    if not secret:
        raise ClientRegistryError("Le secret du client ne peut pas être vide")


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for scope in scopes:
        if not scope or any(char.isspace() for char in scope):
            raise ClientRegistryError("Scope invalide : chaque scope est un mot non vide, sans espace")
        if scope not in cleaned:
            cleaned.append(scope)
    if not cleaned:
        raise ClientRegistryError("Un client doit avoir au moins un scope")
    return cleaned


def _check_rate_limit(rate_limit_per_second: int | None) -> int | None:
    if rate_limit_per_second is not None and rate_limit_per_second < 1:
        raise ClientRegistryError("La limite d'appels par seconde doit être un entier supérieur ou égal à 1")
    return rate_limit_per_second


def verify_client_secret(secret_hash: str | None, secret: str) -> tuple[bool, bool]:
    """(matches, needs rehash) for a secret against a stored hash, or against a dummy hash
    when the client is unknown (``None``): same cost either way, so timing tells nothing.
    Touches no database, so that callers hold no connection during the argon2 check."""
    matches = _verify(secret_hash if secret_hash is not None else _dummy_hash(), secret)
    return matches, matches and secret_hash is not None and _hasher.check_needs_rehash(secret_hash)
