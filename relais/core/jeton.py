"""The opaque ``jetonUsager``: an AES-256-GCM envelope naming a usager for one client.

The partner only ever sees ciphertext; the jeton is bound to the client it was issued to and
expires. See :func:`relais.core.keys.seal` for the framing. Exceptions never carry the jeton nor
what it contains.

Replicas share one key file: after ``rotate_jeton_key`` in one of them, the others seal with the
new key within ``KEY_FILE_CHECK_SECONDS`` and open a jeton sealed with a key they do not know yet
after re-reading the file at once (at most every ``_UNKNOWN_KID_RELOAD_SECONDS``, so forged key
ids cannot turn into a flood of file reads).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from relais.core.keys import EnvelopeError, KeySet, latest_keyset, seal, unseal

# The header that carries the jeton on every per-usager call, as France Travail names it.
JETON_HEADER = "ft-jeton-usager"
_AAD_PREFIX = b"relais-jeton-v1|"
# Far above a real jeton (about 200 characters): bounds the work done on hostile input.
_MAX_JETON_LENGTH = 1024
_UNKNOWN_KID_RELOAD_SECONDS = 0.5


class JetonError(Exception):
    message = "Jeton usager invalide."

    def __init__(self) -> None:
        super().__init__(self.message)


class JetonInvalide(JetonError):
    message = "Jeton usager invalide."


class JetonExpire(JetonError):
    message = "Jeton usager expiré : demandez un nouveau jeton."


class JetonAutreClient(JetonError):
    message = "Jeton usager émis pour un autre client."


def issue_jeton(keys: KeySet, *, usager_id: str, client_id: str, now: datetime, ttl: timedelta) -> str:
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    claims = {"u": usager_id, "c": client_id, "exp": int((now + ttl).timestamp())}
    plaintext = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    keys = latest_keyset(keys)
    return seal(keys.jeton_keys, keys.current_jeton_kid, plaintext, aad_prefix=_AAD_PREFIX)


def open_jeton(keys: KeySet, token: str, *, client_id: str, now: datetime) -> str:
    """Return the usager id, or raise a :class:`JetonError` subclass."""
    claims = _decrypt(keys, token)
    # The client check comes first: another client's jeton is refused whatever its age.
    if claims["c"] != client_id:
        raise JetonAutreClient
    if now.timestamp() >= claims["exp"]:
        raise JetonExpire
    usager_id: str = claims["u"]
    return usager_id


def _unseal(keys: KeySet, token: str) -> bytes:
    keys = latest_keyset(keys)
    try:
        return unseal(keys.jeton_keys, token, aad_prefix=_AAD_PREFIX, max_length=_MAX_JETON_LENGTH)
    except EnvelopeError:
        # Perhaps sealed by a replica that rotated the key a moment ago: look at the file now.
        newer = latest_keyset(keys, min_interval=_UNKNOWN_KID_RELOAD_SECONDS)
        if newer is keys:
            raise
        return unseal(newer.jeton_keys, token, aad_prefix=_AAD_PREFIX, max_length=_MAX_JETON_LENGTH)


def _decrypt(keys: KeySet, token: str) -> dict[str, Any]:
    try:
        plaintext = _unseal(keys, token)
        claims = json.loads(plaintext)
    except (EnvelopeError, ValueError):
        # Not chained: a JSON error would carry the decrypted content along.
        raise JetonInvalide from None
    if not _well_formed(claims):
        raise JetonInvalide
    return dict(claims)


def _well_formed(claims: Any) -> bool:
    return (
        isinstance(claims, dict)
        and isinstance(claims.get("u"), str)
        and isinstance(claims.get("c"), str)
        and type(claims.get("exp")) is int
    )
