"""A signing key rotated elsewhere (another replica, ``relais keys rotate``) is picked up by a
running process without a restart: tokens it names verify at once, new tokens are signed
with it within seconds, and a flood of unknown key ids cannot make the process re-read the
key file on every call."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from relais.core import keys as keys_module
from relais.core.access_tokens import (
    InvalidAccessToken,
    TokenAudience,
    issue_access_token,
    jwks_document,
    verify_relais_token,
)
from relais.core.config import Settings
from relais.core.keys import generate_keyset_document, load_keyset, rotate_signing_key

# Another process rotating the shared key file and signing a token with the new key, as a
# replica restarted after ``relais keys rotate`` would.
ROTATE_AND_SIGN = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from relais.core.access_tokens import issue_access_token
from relais.core.keys import load_keyset, rotate_signing_key
path, issuer, audience = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
now = datetime.now(UTC)
rotate_signing_key(path, now)
print(issue_access_token(load_keyset(path), issuer=issuer, audience=audience, client_id="demo-cd33",
      organisation="CD33", scopes=["rechercheusager"], now=now, ttl=timedelta(minutes=20)))
"""


def settings_for(path: Path, **overrides: object) -> Settings:
    return Settings(keys_file=path, **overrides)  # type: ignore[arg-type]


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def token_from(keys_path: Path, settings: Settings) -> str:
    now = datetime.now(UTC)
    return issue_access_token(
        load_keyset(keys_path),
        issuer=settings.issuer,
        audience=settings.token_audience,
        client_id="demo-cd33",
        organisation="CD33",
        scopes=["rechercheusager"],
        now=now,
        ttl=timedelta(minutes=20),
    )


def test_a_key_rotated_by_another_process_verifies_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(datetime.now(UTC))))
    settings = settings_for(path)
    loaded = load_keyset(path)  # what this "server" loaded at start

    rotated = subprocess.run(  # noqa: S603 - our own code, fixed arguments
        [sys.executable, "-c", ROTATE_AND_SIGN, str(path), settings.issuer, settings.token_audience],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = rotated.stdout.strip()
    assert kid_of(token) != loaded.current_signing_key.kid

    claims = verify_relais_token(loaded, settings, token, audience=TokenAudience.PARTNER, now=datetime.now(UTC))
    assert claims["client_id"] == "demo-cd33"
    # Tokens signed before the rotation, by the keys loaded at start, still verify.
    before = issue_access_token(
        loaded,
        issuer=settings.issuer,
        audience=settings.token_audience,
        client_id="demo-cd33",
        organisation="CD33",
        scopes=["rechercheusager"],
        now=datetime.now(UTC),
        ttl=timedelta(minutes=20),
    )
    assert verify_relais_token(loaded, settings, before, audience=TokenAudience.PARTNER, now=datetime.now(UTC))


def test_unknown_kids_reread_the_file_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(datetime.now(UTC))))
    settings = settings_for(path, keys_reload_min_seconds=60)
    loaded = load_keyset(path)

    rotate_signing_key(path, datetime.now(UTC))
    first = token_from(path, settings)
    # The first unknown kid re-reads the file: accepted.
    verify_relais_token(loaded, settings, first, audience=TokenAudience.PARTNER, now=datetime.now(UTC))

    # Rotated again at once: within the interval, the file is not read again and the
    # newest key stays unknown (a forged kid costs no file read either).
    rotate_signing_key(path, datetime.now(UTC))
    second = token_from(path, settings)
    with pytest.raises(InvalidAccessToken) as refused:
        verify_relais_token(loaded, settings, second, audience=TokenAudience.PARTNER, now=datetime.now(UTC))
    assert refused.value.reason == "unknown_kid"
    # The key learnt on the first re-read is still known without reading.
    verify_relais_token(loaded, settings, first, audience=TokenAudience.PARTNER, now=datetime.now(UTC))

    # Once the interval has passed, the next unknown kid is looked up again.
    impatient = settings_for(path, keys_reload_min_seconds=0)
    verify_relais_token(loaded, impatient, second, audience=TokenAudience.PARTNER, now=datetime.now(UTC))


def test_new_tokens_and_the_jwks_follow_the_rotated_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "KEY_FILE_CHECK_SECONDS", 0.0)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(datetime.now(UTC))))
    settings = settings_for(path)
    loaded = load_keyset(path)
    old_kid = loaded.current_signing_key.kid

    new_kid = rotate_signing_key(path, datetime.now(UTC))
    token = issue_access_token(
        loaded,
        issuer=settings.issuer,
        audience=settings.token_audience,
        client_id="demo-cd33",
        organisation="CD33",
        scopes=["rechercheusager"],
        now=datetime.now(UTC),
        ttl=timedelta(minutes=20),
    )
    assert kid_of(token) == new_kid
    published = [key["kid"] for key in jwks_document(loaded, datetime.now(UTC), timedelta(minutes=25))["keys"]]
    assert published == [new_kid, old_kid]


def test_a_broken_file_keeps_the_keys_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "KEY_FILE_CHECK_SECONDS", 0.0)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(datetime.now(UTC))))
    loaded = load_keyset(path)
    path.write_text("{ half written")
    assert keys_module.latest_keyset(loaded) is loaded
