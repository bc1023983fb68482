from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relais.core.config import Settings
from relais.core.keys import (
    EnvelopeError,
    KeySetError,
    generate_keyset_document,
    load_keyset,
    load_or_create_keyset,
    parse_keyset_document,
    rotate_jeton_key,
    rotate_signing_key,
    seal,
    unseal,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def secrets_in(document: dict[str, Any]) -> list[str]:
    values = [document["blind_index_key_b64"]]
    values += [entry["key_b64"] for entry in document["jeton_keys"] + document["field_keys"]]
    values += [entry["private_key_pem"] for entry in document["signing_keys"]]
    return values


def test_generated_document_loads() -> None:
    document = generate_keyset_document(NOW)
    keys = parse_keyset_document(json.loads(json.dumps(document)))

    assert document["version"] == 1
    signing = keys.current_signing_key
    assert signing.kid == document["signing_keys"][0]["kid"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", signing.kid)
    assert isinstance(signing.private_key.curve, ec.SECP256R1)
    assert signing.created_at == NOW
    assert signing.retired_at is None
    assert keys.current_jeton_kid == document["jeton_keys"][0]["kid"]
    assert len(keys.jeton_keys[keys.current_jeton_kid]) == 32
    assert keys.current_field_kid == document["field_keys"][0]["kid"]
    assert len(keys.field_keys[keys.current_field_kid]) == 32
    assert len(keys.blind_index_key) == 32


def test_generation_uses_fresh_randomness() -> None:
    first, second = generate_keyset_document(NOW), generate_keyset_document(NOW)
    assert set(secrets_in(first)).isdisjoint(secrets_in(second))


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_keyset_document(datetime(2026, 1, 1))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeySetError, match="introuvable"):
        load_keyset(tmp_path / "absent.json")


def test_invalid_json_does_not_leak_content(tmp_path: Path) -> None:
    document = generate_keyset_document(NOW)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document)[:-1], encoding="utf-8")
    with pytest.raises(KeySetError, match="JSON") as caught:
        load_keyset(path)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    for secret in secrets_in(document):
        assert secret not in str(caught.value)


def _other_curve_pem() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


def _setting(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _mutations() -> list[Any]:
    def duplicate_kid(document: dict[str, Any]) -> None:
        document["field_keys"].append(dict(document["field_keys"][0]))

    def second_signing_key_active(document: dict[str, Any]) -> None:
        document["signing_keys"].append(dict(document["signing_keys"][0], kid="other"))

    return [
        pytest.param(_setting("version", value=2), "version", id="version 2"),
        pytest.param(_setting("jeton_keys", value=[]), "jeton_keys", id="no jeton keys"),
        pytest.param(
            _setting("jeton_keys", 0, "key_b64", value=base64.b64encode(b"x" * 16).decode()),
            "32",
            id="short aes key",
        ),
        pytest.param(
            _setting("field_keys", 0, "key_b64", value="not base64!"),
            "field_keys\\[0\\].key_b64",
            id="bad base64",
        ),
        pytest.param(
            _setting("blind_index_key_b64", value=base64.b64encode(b"x").decode()),
            "blind_index",
            id="short blind key",
        ),
        pytest.param(_setting("jeton_keys", 0, "kid", value="a|b"), "kid", id="bad kid"),
        pytest.param(_setting("signing_keys", 0, "alg", value="RS256"), "alg", id="wrong alg"),
        pytest.param(_setting("signing_keys", 0, "private_key_pem", value="-----BEGIN"), "PEM", id="bad pem"),
        pytest.param(_setting("signing_keys", 0, "private_key_pem", value=_other_curve_pem()), "P-256", id="P-384 key"),
        pytest.param(_setting("signing_keys", 0, "created_at", value="2026-11-23T09:00:00"), "fuseau", id="naive date"),
        pytest.param(
            _setting("signing_keys", 0, "retired_at", value=NOW.isoformat()), "courante", id="current retired"
        ),
        pytest.param(duplicate_kid, "même kid", id="duplicate kid"),
        pytest.param(second_signing_key_active, "seule la première", id="two active keys"),
    ]


@pytest.mark.parametrize(("mutate", "message"), _mutations())
def test_invalid_documents_are_refused_without_leaking_secrets(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    document = generate_keyset_document(NOW)
    mutate(document)
    path = write(tmp_path / "keys.json", document)
    with pytest.raises(KeySetError, match=message) as caught:
        load_keyset(path)
    assert str(path) in str(caught.value)
    for secret in secrets_in(document):
        assert secret not in str(caught.value)


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "keys_file": None,
        "database_url": "",
        "generate_dev_keys": None,
    }
    return Settings(**(values | overrides))


def test_load_or_create_generates_a_private_file_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    created = load_or_create_keyset(settings)
    path = settings.resolved_keys_file

    assert path.exists()
    assert mode(path) == 0o600
    assert list(path.parent.iterdir()) == [path]
    reloaded = load_or_create_keyset(settings)
    assert reloaded.current_signing_key.kid == created.current_signing_key.kid
    assert reloaded.blind_index_key == created.blind_index_key


def test_load_or_create_uses_an_existing_file(tmp_path: Path) -> None:
    document = generate_keyset_document(NOW)
    path = write(tmp_path / "prod-keys.json", document)
    keys = load_or_create_keyset(_settings(tmp_path, keys_file=path, generate_dev_keys=False))
    assert keys.current_jeton_kid == document["jeton_keys"][0]["kid"]


def test_load_or_create_never_overwrites_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(KeySetError):
        load_or_create_keyset(_settings(tmp_path, keys_file=path, generate_dev_keys=True))
    assert path.read_text(encoding="utf-8") == "{}"


@pytest.mark.parametrize(
    "overrides",
    [{"generate_dev_keys": False}, {"database_url": "postgresql+psycopg://relais@db/relais"}],
)
def test_load_or_create_refuses_to_generate_outside_development(tmp_path: Path, overrides: dict[str, Any]) -> None:
    settings = _settings(tmp_path, **overrides)
    with pytest.raises(KeySetError, match="RELAIS_KEYS_FILE"):
        load_or_create_keyset(settings)
    assert not settings.resolved_keys_file.exists()


def test_verification_keys_keep_retired_keys_for_max_token_age(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", generate_keyset_document(NOW))
    old_kid = load_keyset(path).current_signing_key.kid
    retired_at = NOW + timedelta(hours=1)
    new_kid = rotate_signing_key(path, retired_at)
    keys = load_keyset(path)
    max_age = timedelta(minutes=25)

    assert keys.current_signing_key.kid == new_kid
    assert list(keys.verification_keys(retired_at, max_age)) == [new_kid, old_kid]
    assert list(keys.verification_keys(retired_at + max_age - timedelta(seconds=1), max_age)) == [
        new_kid,
        old_kid,
    ]
    assert list(keys.verification_keys(retired_at + max_age, max_age)) == [new_kid]


def test_rotate_signing_key(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", generate_keyset_document(NOW))
    path.chmod(0o600)
    before = load_keyset(path)
    later = NOW + timedelta(days=1)

    new_kid = rotate_signing_key(path, later)

    after = load_keyset(path)
    assert new_kid != before.current_signing_key.kid
    assert [key.kid for key in after.signing_keys] == [new_kid, before.current_signing_key.kid]
    assert after.signing_keys[0].created_at == later
    assert after.signing_keys[1].retired_at == later
    assert after.jeton_keys == before.jeton_keys
    assert after.field_keys == before.field_keys
    assert after.blind_index_key == before.blind_index_key
    assert mode(path) == 0o600
    assert list(tmp_path.iterdir()) == [path]


def test_rotate_signing_key_drops_keys_retired_over_30_days_ago(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", generate_keyset_document(NOW))
    first = rotate_signing_key(path, NOW + timedelta(days=1))
    second = rotate_signing_key(path, NOW + timedelta(days=20))
    third = rotate_signing_key(path, NOW + timedelta(days=31, seconds=1))

    assert [key.kid for key in load_keyset(path).signing_keys] == [third, second, first]
    fourth = rotate_signing_key(path, NOW + timedelta(days=50))
    # "first" was retired on day 20 and "second" on day 31: only the latter is within 30 days.
    assert [key.kid for key in load_keyset(path).signing_keys] == [fourth, third, second]


def test_rotate_jeton_key_keeps_previous_keys_for_25_hours(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", generate_keyset_document(NOW))
    original = load_keyset(path).current_jeton_kid
    second = rotate_jeton_key(path, NOW + timedelta(hours=1))
    third = rotate_jeton_key(path, NOW + timedelta(hours=2))
    assert list(load_keyset(path).jeton_keys) == [third, second, original]

    # "original" stopped being current at hour 1: still kept at hour 25 and 59 minutes.
    fourth = rotate_jeton_key(path, NOW + timedelta(hours=25, minutes=59))
    assert list(load_keyset(path).jeton_keys) == [fourth, third, second, original]
    fifth = rotate_jeton_key(path, NOW + timedelta(hours=26, minutes=30))
    keys = load_keyset(path)
    assert list(keys.jeton_keys) == [fifth, fourth, third, second]
    assert keys.current_jeton_kid == fifth
    assert mode(path) == 0o600


def test_rotation_of_an_invalid_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"version": 1}', encoding="utf-8")
    with pytest.raises(KeySetError):
        rotate_signing_key(path, NOW)
    with pytest.raises(KeySetError):
        rotate_jeton_key(path, NOW)
    assert path.read_text(encoding="utf-8") == '{"version": 1}'


def test_envelope_round_trip_and_canonical_encoding() -> None:
    keys = {"k1": bytes(32)}
    sealed = seal(keys, "k1", b"payload", aad_prefix=b"test|")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", sealed)
    assert unseal(keys, sealed, aad_prefix=b"test|") == b"payload"
    with pytest.raises(EnvelopeError):
        unseal(keys, sealed, aad_prefix=b"other|")
    with pytest.raises(EnvelopeError):
        unseal(keys, sealed + "=", aad_prefix=b"test|")
    with pytest.raises(EnvelopeError):
        unseal(keys, sealed, aad_prefix=b"test|", max_length=len(sealed) - 1)
