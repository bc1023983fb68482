"""The key set: signing keys for access tokens, AES keys for jetons and fields, blind index key.

It lives in one JSON file (version 1) readable by the service account only::

    {"version": 1,
     "signing_keys": [{"kid", "alg": "ES256", "private_key_pem", "created_at", "retired_at"}],
     "jeton_keys": [{"kid", "key_b64", "created_at"}],
     "field_keys": [{"kid", "key_b64", "created_at"}],
     "blind_index_key_b64": "..."}

In every list the first key is the current one. Older keys stay as long as something they
produced can still be presented: access tokens until they expire, jetons for a day, encrypted
fields for ever (field keys are never dropped).

This module also holds the kid-framed AES-256-GCM envelope shared by jetons and encrypted
fields, so that rotation works the same way for both.

Error messages name the file and the faulty entry, never a key.

Running processes follow the file (``latest_keyset``): a key set loaded from a file is checked
against it at most every few seconds, and at once (still rate-limited) when a token names a
signing key the process does not know, so a key rotated on one replica signs and verifies on
every replica without a restart.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import itertools
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relais.core.config import Settings

KEYSET_VERSION = 1
SIGNING_ALG = "ES256"
AES_KEY_BYTES = 32
BLIND_INDEX_KEY_BYTES = 32
# Retired signing keys are kept well beyond any access token lifetime, for investigations.
SIGNING_KEY_RETENTION = timedelta(days=30)
# A jeton lives 24 hours; one more hour absorbs clock skew and in-flight requests.
JETON_KEY_RETENTION = timedelta(hours=25)

_KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class KeySetError(Exception):
    """The key set is missing or invalid. The message never contains key material."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    created_at: datetime
    retired_at: datetime | None

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()


# eq=False keeps identity hashing: a key set holds dicts and is compared by identity anyway.
@dataclass(frozen=True, eq=False)
class KeySet:
    signing_keys: tuple[SigningKey, ...]
    jeton_keys: dict[str, bytes]
    current_jeton_kid: str
    field_keys: dict[str, bytes]
    current_field_kid: str
    blind_index_key: bytes
    # The file it was read from and that file's state then (see ``latest_keyset``); None for
    # a set built in memory, which never changes.
    source: Path | None = field(default=None, compare=False)
    source_stamp: str | None = field(default=None, compare=False)
    # Order of reading within this process: of two sets read from one file, the later is newer.
    generation: int = field(default=0, compare=False)

    @property
    def current_signing_key(self) -> SigningKey:
        return self.signing_keys[0]

    def verification_keys(self, now: datetime, max_token_age: timedelta) -> dict[str, ec.EllipticCurvePublicKey]:
        """Public keys that may have signed a token still alive at ``now``, current key first."""
        return {
            key.kid: key.public_key
            for key in self.signing_keys
            if key.retired_at is None or key.retired_at + max_token_age > now
        }


# --- Generation --------------------------------------------------------------------------


def new_kid() -> str:
    return secrets.token_urlsafe(8)


def generate_keyset_document(now: datetime) -> dict[str, Any]:
    _require_aware(now)
    return {
        "version": KEYSET_VERSION,
        "signing_keys": [_new_signing_entry(now)],
        "jeton_keys": [_new_aes_entry(now)],
        "field_keys": [_new_aes_entry(now)],
        "blind_index_key_b64": _b64(secrets.token_bytes(BLIND_INDEX_KEY_BYTES)),
    }


def _new_signing_entry(now: datetime) -> dict[str, Any]:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "kid": new_kid(),
        "alg": SIGNING_ALG,
        "private_key_pem": pem.decode("ascii"),
        "created_at": now.isoformat(),
        "retired_at": None,
    }


def _new_aes_entry(now: datetime) -> dict[str, Any]:
    return {
        "kid": new_kid(),
        "key_b64": _b64(AESGCM.generate_key(bit_length=256)),
        "created_at": now.isoformat(),
    }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")


# --- Loading -----------------------------------------------------------------------------


def load_keyset(path: Path) -> KeySet:
    text = _read_text(path)
    keyset = parse_keyset_document(_parse_document(text, path), path)
    return dataclasses.replace(keyset, source=path, source_stamp=_stamp(text), generation=next(_generations))


def _stamp(text: str) -> str:
    """What tells one version of the file from another (its content: inode and mtime can repeat)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_generations = itertools.count(1)

# How often a running process looks at its key file when nothing asks it to.
KEY_FILE_CHECK_SECONDS = 2.0


class _KeyFileWatch:
    """The newest key set read from one file, re-read when the file changed, checked rarely."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._newest: KeySet | None = None

    def latest(self, keys: KeySet, min_interval: float) -> KeySet:
        assert keys.source is not None
        now = self._clock()
        with self._lock:
            if now - self._checked_at >= min_interval:
                self._checked_at = now
                self._refresh(keys)
            newest = self._newest
        return newest if newest is not None and newest.generation > keys.generation else keys

    def _refresh(self, keys: KeySet) -> None:
        # Remembers the set matching the file as last read, whichever caller read it.
        assert keys.source is not None
        try:
            text = _read_text(keys.source)
            stamp = _stamp(text)
            if self._newest is not None and self._newest.source_stamp == stamp:
                return
            if stamp == keys.source_stamp:
                self._newest = keys
                return
            self._newest = dataclasses.replace(
                parse_keyset_document(_parse_document(text, keys.source), keys.source),
                source=keys.source,
                source_stamp=stamp,
                generation=next(_generations),
            )
        except KeySetError as exc:
            # A half-written or broken file: keep serving with the keys we have. The message
            # names the file and the entry, never a key.
            _log.warning("keyset_reload_failed", error=str(exc))


_watches: dict[Path, _KeyFileWatch] = {}
_watches_lock = threading.Lock()
_log = structlog.get_logger("relais.keys")


def latest_keyset(keys: KeySet, *, min_interval: float | None = None) -> KeySet:
    """``keys``, or the newer set its file holds now (looked at once per ``min_interval`` at most,
    ``KEY_FILE_CHECK_SECONDS`` by default).

    Process-wide per file, so that every caller of one process shares the reads.
    """
    if keys.source is None:
        return keys
    watch = _watches.get(keys.source)
    if watch is None:
        with _watches_lock:
            watch = _watches.setdefault(keys.source, _KeyFileWatch(time.monotonic))
    return watch.latest(keys, KEY_FILE_CHECK_SECONDS if min_interval is None else min_interval)


def load_or_create_keyset(settings: Settings) -> KeySet:
    path = settings.resolved_keys_file
    if not path.exists():
        if not settings.may_generate_dev_keys:
            raise KeySetError(
                f"Jeu de clés introuvable : {path}. Indiquez le fichier de clés de production "
                "avec RELAIS_KEYS_FILE (la génération automatique est réservée au développement)."
            )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_document(path, generate_keyset_document(datetime.now(UTC)))
    return load_keyset(path)


def _read_document(path: Path) -> dict[str, Any]:
    return _parse_document(_read_text(path), path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeySetError(f"Jeu de clés introuvable : {path}") from None
    except OSError as exc:
        raise KeySetError(f"Jeu de clés illisible : {path} ({exc.strerror})") from None


def _parse_document(text: str, path: Path) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError:
        # The decoder error carries the file content (keys) along: do not chain it.
        raise KeySetError(f"Jeu de clés invalide : {path} n'est pas un JSON valide") from None
    if not isinstance(document, dict):
        raise KeySetError(f"Jeu de clés invalide : {path} doit contenir un objet JSON")
    return document


def parse_keyset_document(document: Mapping[str, Any], path: Path | str = "<document>") -> KeySet:
    return _Parser(str(path)).keyset(document)


class _Parser:
    """Validates a version 1 document; each error names the faulty entry."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> KeySetError:
        return KeySetError(f"Jeu de clés invalide ({self.source}) : {where} {problem}")

    def keyset(self, document: Mapping[str, Any]) -> KeySet:
        if document.get("version") != KEYSET_VERSION:
            raise self.fail("version", f"doit valoir {KEYSET_VERSION}")
        signing_keys = tuple(
            self.signing_key(entry, f"signing_keys[{i}]")
            for i, entry in enumerate(self.entries(document, "signing_keys"))
        )
        self.check_unique([key.kid for key in signing_keys], "signing_keys")
        self.check_signing_order(signing_keys)
        jeton_keys = self.aes_keys(document, "jeton_keys")
        field_keys = self.aes_keys(document, "field_keys")
        return KeySet(
            signing_keys=signing_keys,
            jeton_keys=jeton_keys,
            current_jeton_kid=next(iter(jeton_keys)),
            field_keys=field_keys,
            current_field_kid=next(iter(field_keys)),
            blind_index_key=self.secret(document, "blind_index_key_b64", BLIND_INDEX_KEY_BYTES),
        )

    def entries(self, document: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
        entries = document.get(name)
        if not isinstance(entries, list) or not entries:
            raise self.fail(name, "doit être une liste non vide")
        if not all(isinstance(entry, dict) for entry in entries):
            raise self.fail(name, "doit contenir des objets")
        return entries

    def check_unique(self, kids: list[str], name: str) -> None:
        if len(set(kids)) != len(kids):
            raise self.fail(name, "contient deux fois le même kid")

    def signing_key(self, entry: Mapping[str, Any], where: str) -> SigningKey:
        if entry.get("alg") != SIGNING_ALG:
            raise self.fail(f"{where}.alg", f"doit valoir {SIGNING_ALG}")
        retired_at = entry.get("retired_at")
        return SigningKey(
            kid=self.kid(entry, where),
            private_key=self.p256_private_key(entry.get("private_key_pem"), f"{where}.private_key_pem"),
            created_at=self.timestamp(entry.get("created_at"), f"{where}.created_at"),
            retired_at=None if retired_at is None else self.timestamp(retired_at, f"{where}.retired_at"),
        )

    def check_signing_order(self, keys: tuple[SigningKey, ...]) -> None:
        if keys[0].retired_at is not None:
            raise self.fail("signing_keys[0]", "est la clé courante et ne peut pas être retirée")
        for i, key in enumerate(keys[1:], start=1):
            if key.retired_at is None:
                raise self.fail(f"signing_keys[{i}].retired_at", "est requis : seule la première clé est active")

    def aes_keys(self, document: Mapping[str, Any], name: str) -> dict[str, bytes]:
        kids: list[str] = []
        secrets_: list[bytes] = []
        for i, entry in enumerate(self.entries(document, name)):
            where = f"{name}[{i}]"
            self.timestamp(entry.get("created_at"), f"{where}.created_at")
            kids.append(self.kid(entry, where))
            secrets_.append(self.secret(entry, "key_b64", AES_KEY_BYTES, where))
        self.check_unique(kids, name)
        return dict(zip(kids, secrets_, strict=True))

    def kid(self, entry: Mapping[str, Any], where: str) -> str:
        kid = entry.get("kid")
        if not isinstance(kid, str) or not _KID_PATTERN.fullmatch(kid):
            raise self.fail(f"{where}.kid", "doit comporter 1 à 64 caractères parmi A-Z a-z 0-9 _ -")
        return kid

    def secret(self, entry: Mapping[str, Any], name: str, size: int, where: str = "") -> bytes:
        label = f"{where}.{name}" if where else name
        value = entry.get(name)
        try:
            raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != size:
            raise self.fail(label, f"doit être une clé de {size} octets encodée en base64")
        return raw

    def p256_private_key(self, pem: Any, where: str) -> ec.EllipticCurvePrivateKey:
        key = None
        if isinstance(pem, str):
            try:
                key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
            except (TypeError, ValueError, UnsupportedAlgorithm):
                pass
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise self.fail(where, "doit être une clé privée EC P-256 au format PEM non chiffré")
        return key

    def timestamp(self, value: Any, where: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise self.fail(where, "doit être une date ISO 8601 avec fuseau horaire")
        return parsed


# --- Writing and rotation ----------------------------------------------------------------


def rotate_signing_key(path: Path, now: datetime) -> str:
    """Put a new ES256 key first, retire the previous one, drop keys retired over 30 days ago."""
    _require_aware(now)
    document = _read_valid_document(path)
    entries: list[dict[str, Any]] = document["signing_keys"]
    entries[0]["retired_at"] = now.isoformat()
    kept = [entry for entry in entries if datetime.fromisoformat(entry["retired_at"]) + SIGNING_KEY_RETENTION > now]
    new_entry = _new_signing_entry(now)
    document["signing_keys"] = [new_entry, *kept]
    _replace_document(path, document)
    return str(new_entry["kid"])


def rotate_jeton_key(path: Path, now: datetime) -> str:
    """Put a new jeton key first; keep older ones 25 hours after they stopped being current."""
    _require_aware(now)
    document = _read_valid_document(path)
    new_entry = _new_aes_entry(now)
    entries: list[dict[str, Any]] = [new_entry, *document["jeton_keys"]]
    # A jeton key stopped being current when the key listed just before it was created.
    document["jeton_keys"] = entries[:2] + [
        entry
        for successor, entry in zip(entries[1:], entries[2:], strict=False)
        if datetime.fromisoformat(successor["created_at"]) + JETON_KEY_RETENTION > now
    ]
    _replace_document(path, document)
    return str(new_entry["kid"])


def _read_valid_document(path: Path) -> dict[str, Any]:
    document = _read_document(path)
    parse_keyset_document(document, path)
    return document


def _replace_document(path: Path, document: Mapping[str, Any]) -> None:
    parse_keyset_document(document, path)
    temp = _write_temp(path, document)
    try:
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _create_document(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``path`` only if it does not exist yet, so concurrent starts agree on one key set."""
    temp = _write_temp(path, document)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)


def _write_temp(path: Path, document: Mapping[str, Any]) -> Path:
    # mkstemp creates the file with mode 0600 in the target directory, so the final rename or
    # link stays on one file system and the secret is never readable by others, even briefly.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


# --- Kid-framed AES-256-GCM envelope -----------------------------------------------------
#
# Layout, then base64url without padding:
#   format version (1 byte) | kid length n (1 byte) | kid (n ASCII bytes) | nonce (12) | ciphertext+tag
# The kid travels in clear so that any key still in the set can open the envelope.

_ENVELOPE_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class EnvelopeError(Exception):
    """The envelope cannot be opened. Deliberately carries no detail."""


@functools.lru_cache(maxsize=64)
def _aead(key: bytes) -> AESGCM:
    """The cipher of a key, set up once: every jeton is sealed or opened with one of a few keys.
    (An ``AESGCM`` holds no state between calls; each call takes its own nonce.)"""
    return AESGCM(key)


def seal(keys: Mapping[str, bytes], kid: str, plaintext: bytes, *, aad_prefix: bytes) -> str:
    """Encrypt with ``keys[kid]``; the authenticated data is ``aad_prefix + kid``."""
    kid_bytes = kid.encode("ascii")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ciphertext = _aead(keys[kid]).encrypt(nonce, plaintext, aad_prefix + kid_bytes)
    frame = bytes([_ENVELOPE_VERSION, len(kid_bytes)]) + kid_bytes + nonce + ciphertext
    return base64.urlsafe_b64encode(frame).rstrip(b"=").decode("ascii")


def unseal(keys: Mapping[str, bytes], token: str, *, aad_prefix: bytes, max_length: int = 4096) -> bytes:
    frame = _decode_base64url(token, max_length)
    if len(frame) < 2 or frame[0] != _ENVELOPE_VERSION:
        raise EnvelopeError
    kid_end = 2 + frame[1]
    kid_bytes = frame[2:kid_end]
    nonce = frame[kid_end : kid_end + _NONCE_BYTES]
    ciphertext = frame[kid_end + _NONCE_BYTES :]
    key = keys.get(kid_bytes.decode("ascii", errors="replace"))
    if key is None or len(ciphertext) < _TAG_BYTES:
        raise EnvelopeError
    try:
        return _aead(key).decrypt(nonce, ciphertext, aad_prefix + kid_bytes)
    except InvalidTag:
        raise EnvelopeError from None


def _decode_base64url(token: str, max_length: int) -> bytes:
    if not isinstance(token, str) or len(token) > max_length or not _BASE64URL.fullmatch(token):
        raise EnvelopeError
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise EnvelopeError from None
    # Only the canonical spelling is accepted, so one envelope has exactly one string form.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise EnvelopeError
    return raw
