"""Personal data at rest: the NIR is stored encrypted, and found again through a blind index.

The blind index is a keyed hash, so equal NIRs can be looked up without storing them in clear,
and the table alone does not allow guessing them (the NIR space is small enough to enumerate).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac

from relais.core.keys import EnvelopeError, KeySet, seal, unseal
from relais.core.nir import normalize_nir

_AAD_PREFIX = b"relais-field-v1|"


class FieldDecryptionError(Exception):
    def __init__(self) -> None:
        super().__init__("Donnée chiffrée illisible : clé inconnue, contexte incorrect ou donnée altérée.")


def blind_index(keys: KeySet, nir13: str) -> str:
    """HMAC-SHA256 (hex) of the normalised 13-character NIR; raises NirError if it is invalid."""
    # Normalising here guarantees that spacing or a trailing key never yields a second index.
    mac = hmac.HMAC(keys.blind_index_key, hashes.SHA256())
    mac.update(normalize_nir(nir13).encode("ascii"))
    return mac.finalize().hex()


def encrypt_field(keys: KeySet, plaintext: str, *, context: str) -> str:
    """Encrypt with the current field key; ``context`` (e.g. "usager.nir") must match on decryption."""
    return seal(keys.field_keys, keys.current_field_kid, plaintext.encode("utf-8"), aad_prefix=_aad(context))


def decrypt_field(keys: KeySet, token: str, *, context: str) -> str:
    try:
        return unseal(keys.field_keys, token, aad_prefix=_aad(context)).decode("utf-8")
    except (EnvelopeError, UnicodeDecodeError):
        raise FieldDecryptionError from None


def _aad(context: str) -> bytes:
    # The context binds a ciphertext to its column: a NIR copied into another field will not open.
    # A separator ends it, and kids never contain "|", so context and kid cannot be confused.
    return _AAD_PREFIX + context.encode("utf-8") + b"|"
