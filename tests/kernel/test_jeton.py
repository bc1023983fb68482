from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relais.core.jeton import (
    JetonAutreClient,
    JetonError,
    JetonExpire,
    JetonInvalide,
    issue_jeton,
    open_jeton,
)
from relais.core.keys import (
    KeySet,
    generate_keyset_document,
    load_keyset,
    parse_keyset_document,
    rotate_jeton_key,
    seal,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TTL = timedelta(hours=24)
USAGER = "usager-7f3a"
CLIENT = "client-mission-locale"


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return parse_keyset_document(generate_keyset_document(NOW))


def issue(keys: KeySet, *, client_id: str = CLIENT) -> str:
    return issue_jeton(keys, usager_id=USAGER, client_id=client_id, now=NOW, ttl=TTL)


def unpadded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decoded(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_round_trip(keys: KeySet) -> None:
    token = issue(keys)
    assert open_jeton(keys, token, client_id=CLIENT, now=NOW + TTL - timedelta(seconds=1)) == USAGER


def test_jeton_is_opaque_and_header_safe(keys: KeySet) -> None:
    token = issue(keys)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert USAGER.encode() not in decoded(token)
    assert CLIENT.encode() not in decoded(token)
    assert issue(keys) != token


def test_framing_names_the_key(keys: KeySet) -> None:
    frame = decoded(issue(keys))
    kid = keys.current_jeton_kid.encode()
    assert frame[0] == 1
    assert frame[1] == len(kid)
    assert frame[2 : 2 + len(kid)] == kid


@pytest.mark.parametrize("position", [0, 1, 5, 20, -17, -1])
def test_tampered_byte(keys: KeySet, position: int) -> None:
    frame = bytearray(decoded(issue(keys)))
    frame[position] ^= 0x01
    with pytest.raises(JetonInvalide):
        open_jeton(keys, unpadded(bytes(frame)), client_id=CLIENT, now=NOW)


@pytest.mark.parametrize("keep", [0, 1, 2, 10, 30, -1])
def test_truncated(keys: KeySet, keep: int) -> None:
    frame = decoded(issue(keys))
    with pytest.raises(JetonInvalide):
        open_jeton(keys, unpadded(frame[:keep]), client_id=CLIENT, now=NOW)


@pytest.mark.parametrize(
    "garbage",
    ["", "a", "not a jeton", "AAAA", "////", "eyJhbGciOiJub25lIn0.e30.", "é" * 40, "A" * 5000],
)
def test_garbage(keys: KeySet, garbage: str) -> None:
    with pytest.raises(JetonInvalide):
        open_jeton(keys, garbage, client_id=CLIENT, now=NOW)


def test_padded_or_standard_base64_spelling_is_refused(keys: KeySet) -> None:
    token = issue(keys)
    with pytest.raises(JetonInvalide):
        open_jeton(keys, token + "=", client_id=CLIENT, now=NOW)


def test_unknown_kid(keys: KeySet) -> None:
    other = parse_keyset_document(generate_keyset_document(NOW))
    with pytest.raises(JetonInvalide):
        open_jeton(keys, issue(other), client_id=CLIENT, now=NOW)


def test_wrong_aad_is_refused(keys: KeySet) -> None:
    # Same key and kid, but the envelope was sealed for another purpose (an encrypted field).
    plaintext = json.dumps({"u": USAGER, "c": CLIENT, "exp": int((NOW + TTL).timestamp())}).encode()
    token = seal(keys.jeton_keys, keys.current_jeton_kid, plaintext, aad_prefix=b"relais-field-v1|")
    with pytest.raises(JetonInvalide):
        open_jeton(keys, token, client_id=CLIENT, now=NOW)


def test_expired(keys: KeySet) -> None:
    token = issue(keys)
    with pytest.raises(JetonExpire):
        open_jeton(keys, token, client_id=CLIENT, now=NOW + TTL)


def test_other_client(keys: KeySet) -> None:
    token = issue(keys)
    with pytest.raises(JetonAutreClient):
        open_jeton(keys, token, client_id="client-departement-93", now=NOW)


def test_rotated_key_still_opens_old_jetons(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(NOW)), encoding="utf-8")
    old_token = issue(load_keyset(path))

    new_kid = rotate_jeton_key(path, NOW + timedelta(hours=1))
    rotated = load_keyset(path)

    assert rotated.current_jeton_kid == new_kid
    assert open_jeton(rotated, old_token, client_id=CLIENT, now=NOW + timedelta(hours=2)) == USAGER
    assert decoded(issue(rotated))[2 : 2 + len(new_kid)] == new_kid.encode()


def test_errors_are_french_and_never_contain_the_jeton(keys: KeySet) -> None:
    token = issue(keys)
    attempts = [
        (token[:-3], CLIENT, NOW),
        (token, "autre", NOW),
        (token, CLIENT, NOW + TTL),
    ]
    for attempt, client_id, now in attempts:
        with pytest.raises(JetonError) as caught:
            open_jeton(keys, attempt, client_id=client_id, now=now)
        error = caught.value
        assert error.message.startswith("Jeton usager")
        assert str(error) == error.message
        assert token[:20] not in str(error)
        assert USAGER not in str(error)
        assert error.__cause__ is None


def test_ttl_must_be_positive(keys: KeySet) -> None:
    with pytest.raises(ValueError, match="ttl"):
        issue_jeton(keys, usager_id=USAGER, client_id=CLIENT, now=NOW, ttl=timedelta(0))
