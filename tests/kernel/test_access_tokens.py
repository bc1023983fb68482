from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from relais.core.access_tokens import (
    InvalidAccessToken,
    issue_access_token,
    jwks_document,
    verify_access_token,
)
from relais.core.keys import (
    KeySet,
    generate_keyset_document,
    load_keyset,
    parse_keyset_document,
    rotate_signing_key,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=1499)
LEEWAY = timedelta(seconds=30)
MAX_AGE = TTL
ISSUER = "https://relais.example.fr"
AUDIENCE = "relais-partenaire"


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return parse_keyset_document(generate_keyset_document(NOW))


def issue(keys: KeySet, *, now: datetime = NOW, audience: str = AUDIENCE, issuer: str = ISSUER) -> str:
    return issue_access_token(
        keys,
        issuer=issuer,
        audience=audience,
        client_id="client-42",
        organisation="Mission locale de Lyon",
        scopes=["api_rechercher-usagerv2", "rechercheusager"],
        now=now,
        ttl=TTL,
    )


def verify(keys: KeySet, token: str, *, now: datetime = NOW) -> dict[str, Any]:
    return verify_access_token(
        keys, token, issuer=ISSUER, audience=AUDIENCE, now=now, leeway=LEEWAY, max_token_age=MAX_AGE
    )


def reason_for(keys: KeySet, token: str, *, now: datetime = NOW) -> str:
    with pytest.raises(InvalidAccessToken) as caught:
        verify(keys, token, now=now)
    return caught.value.reason


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64_json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


def test_round_trip(keys: KeySet) -> None:
    token = issue(keys)
    header, _, _ = segments(token)
    assert header == {"alg": "ES256", "kid": keys.current_signing_key.kid, "typ": "at+jwt"}

    claims = verify(keys, token, now=NOW + timedelta(minutes=10))
    iat = int(NOW.timestamp())
    assert claims == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "client-42",
        "client_id": "client-42",
        "org": "Mission locale de Lyon",
        "scope": "api_rechercher-usagerv2 rechercheusager",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 1499,
        "jti": claims["jti"],
    }
    assert len(claims["jti"]) == 32
    assert segments(issue(keys))[1]["jti"] != claims["jti"]


def test_alg_none_is_rejected(keys: KeySet) -> None:
    _, payload, _ = segments(issue(keys))
    header = {"alg": "none", "kid": keys.current_signing_key.kid, "typ": "at+jwt"}
    forged = f"{b64_json(header)}.{b64_json(payload)}."
    assert reason_for(keys, forged) == "bad_algorithm"


def test_hs256_signed_with_the_public_key_is_rejected(keys: KeySet) -> None:
    public_pem = keys.current_signing_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, payload, _ = segments(issue(keys))
    header = {"alg": "HS256", "kid": keys.current_signing_key.kid, "typ": "at+jwt"}
    signing_input = f"{b64_json(header)}.{b64_json(payload)}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert reason_for(keys, f"{signing_input}.{b64(signature)}") == "bad_algorithm"


def test_wrong_audience(keys: KeySet) -> None:
    assert reason_for(keys, issue(keys, audience="autre-api")) == "bad_audience"


def test_wrong_issuer(keys: KeySet) -> None:
    assert reason_for(keys, issue(keys, issuer="https://ailleurs.example.fr")) == "bad_issuer"


def test_expiry_uses_the_given_clock_with_leeway(keys: KeySet) -> None:
    token = issue(keys)
    verify(keys, token, now=NOW + TTL + LEEWAY - timedelta(seconds=1))
    assert reason_for(keys, token, now=NOW + TTL + LEEWAY) == "expired"


def test_token_from_the_future_is_rejected(keys: KeySet) -> None:
    token = issue(keys, now=NOW + timedelta(minutes=5))
    verify(keys, token, now=NOW + timedelta(minutes=5) - LEEWAY)
    assert reason_for(keys, token, now=NOW) == "not_yet_valid"


def test_tampered_payload(keys: KeySet) -> None:
    header, payload, signature = issue(keys).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] += " admin"
    assert reason_for(keys, f"{header}.{b64_json(claims)}.{signature}") == "bad_signature"


def test_tampered_signature(keys: KeySet) -> None:
    header, payload, signature = issue(keys).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    assert reason_for(keys, f"{header}.{payload}.{b64(bytes(raw))}") == "bad_signature"


def test_unknown_kid(keys: KeySet) -> None:
    other = parse_keyset_document(generate_keyset_document(NOW))
    assert reason_for(keys, issue(other)) == "unknown_kid"


def test_key_of_the_right_kid_must_have_signed(keys: KeySet) -> None:
    other = parse_keyset_document(generate_keyset_document(NOW))
    _, payload, _ = segments(issue(keys))
    forged = jwt.encode(
        payload,
        other.current_signing_key.private_key,
        algorithm="ES256",
        headers={"kid": keys.current_signing_key.kid, "typ": "at+jwt"},
    )
    assert reason_for(keys, forged) == "bad_signature"


def test_wrong_type(keys: KeySet) -> None:
    _, payload, _ = segments(issue(keys))
    key = keys.current_signing_key
    id_token = jwt.encode(payload, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "JWT"})
    assert reason_for(keys, id_token) == "bad_type"


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti", "client_id", "scope"])
def test_missing_claim(keys: KeySet, claim: str) -> None:
    _, payload, _ = segments(issue(keys))
    del payload[claim]
    key = keys.current_signing_key
    token = jwt.encode(payload, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"})
    assert reason_for(keys, token) == "missing_claim"


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "a.b", "....", "eyJhbGciOiJFUzI1NiJ9.!!!.x"])
def test_malformed(keys: KeySet, garbage: str) -> None:
    assert reason_for(keys, garbage) == "malformed"


def test_malformed_payload_behind_a_valid_header(keys: KeySet) -> None:
    header = {"alg": "ES256", "kid": keys.current_signing_key.kid, "typ": "at+jwt"}
    assert reason_for(keys, f"{b64_json(header)}.!!!.AAAA") == "malformed"


def test_retired_key_verifies_until_its_tokens_have_expired(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(NOW)), encoding="utf-8")
    token = issue(load_keyset(path))
    retired_at = NOW + timedelta(minutes=1)
    rotate_signing_key(path, retired_at)
    keys = load_keyset(path)

    assert verify(keys, token, now=NOW + timedelta(minutes=20))["sub"] == "client-42"
    assert reason_for(keys, token, now=retired_at + MAX_AGE) == "unknown_kid"
    assert segments(issue(keys))[0]["kid"] == keys.current_signing_key.kid


def test_jwks_contains_both_keys_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(NOW)), encoding="utf-8")
    old_kid = load_keyset(path).current_signing_key.kid
    new_kid = rotate_signing_key(path, NOW)
    keys = load_keyset(path)

    document = jwks_document(keys, NOW + timedelta(minutes=1), MAX_AGE)

    assert [jwk["kid"] for jwk in document["keys"]] == [new_kid, old_kid]
    for jwk in document["keys"]:
        assert jwk["kty"] == "EC"
        assert jwk["crv"] == "P-256"
        assert jwk["use"] == "sig"
        assert jwk["alg"] == "ES256"
        assert "d" not in jwk
    assert [jwk["kid"] for jwk in jwks_document(keys, NOW + MAX_AGE, MAX_AGE)["keys"]] == [new_kid]


def test_jwks_verifies_tokens(keys: KeySet) -> None:
    (jwk,) = jwks_document(keys, NOW, MAX_AGE)["keys"]
    public_key = ECAlgorithm.from_jwk(jwk)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    claims = jwt.decode(
        issue(keys),
        public_key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["client_id"] == "client-42"


def test_scopes_cannot_contain_spaces(keys: KeySet) -> None:
    with pytest.raises(ValueError, match="scope"):
        issue_access_token(
            keys,
            issuer=ISSUER,
            audience=AUDIENCE,
            client_id="c",
            organisation="o",
            scopes=["a b"],
            now=NOW,
            ttl=TTL,
        )
