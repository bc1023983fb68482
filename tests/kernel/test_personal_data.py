from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, hmac

from relais.core.keys import KeySet, generate_keyset_document, parse_keyset_document
from relais.core.nir import NirError
from relais.core.personal_data import FieldDecryptionError, blind_index, decrypt_field, encrypt_field

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NIR = "2690549588157"
CONTEXT = "usager.nir"


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return parse_keyset_document(generate_keyset_document(NOW))


def test_blind_index_is_hmac_sha256_of_the_nir(keys: KeySet) -> None:
    mac = hmac.HMAC(keys.blind_index_key, hashes.SHA256())
    mac.update(NIR.encode())
    assert blind_index(keys, NIR) == mac.finalize().hex()
    assert re.fullmatch(r"[0-9a-f]{64}", blind_index(keys, NIR))


def test_blind_index_is_deterministic_across_spellings(keys: KeySet) -> None:
    assert blind_index(keys, NIR) == blind_index(keys, NIR)
    assert blind_index(keys, "2 69 05 49 588 157 80") == blind_index(keys, NIR)
    assert blind_index(keys, "180122a123456") == blind_index(keys, "180122A123456")


def test_blind_index_depends_on_the_key_and_the_nir(keys: KeySet) -> None:
    other = parse_keyset_document(generate_keyset_document(NOW))
    assert blind_index(other, NIR) != blind_index(keys, NIR)
    assert blind_index(keys, "1850578006084") != blind_index(keys, NIR)


def test_blind_index_refuses_an_invalid_nir(keys: KeySet) -> None:
    with pytest.raises(NirError):
        blind_index(keys, "not a nir")


def test_field_round_trip(keys: KeySet) -> None:
    token = encrypt_field(keys, NIR, context=CONTEXT)
    assert NIR not in token
    assert encrypt_field(keys, NIR, context=CONTEXT) != token
    assert decrypt_field(keys, token, context=CONTEXT) == NIR


def test_field_round_trip_unicode(keys: KeySet) -> None:
    token = encrypt_field(keys, "Éloïse Ñúñez", context="usager.nom")
    assert decrypt_field(keys, token, context="usager.nom") == "Éloïse Ñúñez"


def test_wrong_context_is_refused(keys: KeySet) -> None:
    token = encrypt_field(keys, NIR, context=CONTEXT)
    for context in ("usager.nom", "usager.nir|x", ""):
        with pytest.raises(FieldDecryptionError):
            decrypt_field(keys, token, context=context)


def test_tampered_field_is_refused_without_leaking(keys: KeySet) -> None:
    token = encrypt_field(keys, NIR, context=CONTEXT)
    frame = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    frame[-1] ^= 0x80
    tampered = base64.urlsafe_b64encode(bytes(frame)).rstrip(b"=").decode()
    with pytest.raises(FieldDecryptionError) as caught:
        decrypt_field(keys, tampered, context=CONTEXT)
    assert NIR not in str(caught.value)
    assert tampered not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("garbage", ["", "abc", "!!!!", "A" * 10_000])
def test_garbage_is_refused(keys: KeySet, garbage: str) -> None:
    with pytest.raises(FieldDecryptionError):
        decrypt_field(keys, garbage, context=CONTEXT)


def test_old_field_key_still_decrypts(keys: KeySet) -> None:
    token = encrypt_field(keys, NIR, context=CONTEXT)
    document = generate_keyset_document(NOW)
    # Simulate a field key rotation: a new current key, the old one kept behind it.
    old_entry = {
        "kid": keys.current_field_kid,
        "key_b64": base64.b64encode(keys.field_keys[keys.current_field_kid]).decode(),
        "created_at": NOW.isoformat(),
    }
    document["field_keys"].append(old_entry)
    rotated = parse_keyset_document(json.loads(json.dumps(document)), Path("rotated.json"))

    assert rotated.current_field_kid != keys.current_field_kid
    assert decrypt_field(rotated, token, context=CONTEXT) == NIR
    new_token = encrypt_field(rotated, NIR, context=CONTEXT)
    with pytest.raises(FieldDecryptionError):
        decrypt_field(keys, new_token, context=CONTEXT)
