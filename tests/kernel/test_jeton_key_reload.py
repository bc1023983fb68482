"""A jeton key rotated by another replica (``rotate_jeton_key`` on the shared key file) does not
break jetons between replicas: a jeton it seals opens here at once, without a restart, and this
process seals with the new key too once it has looked at the file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relais.core.jeton import JetonInvalide, issue_jeton, open_jeton
from relais.core.keys import generate_keyset_document, latest_keyset, load_keyset, rotate_jeton_key

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(generate_keyset_document(NOW)))
    return path


def test_a_jeton_sealed_after_a_rotation_elsewhere_opens_here_without_restart(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    here = load_keyset(path)  # what this replica loaded at start
    rotate_jeton_key(path, NOW)
    elsewhere = load_keyset(path)  # the replica that rotated (or restarted since)
    assert elsewhere.current_jeton_kid != here.current_jeton_kid

    jeton = issue_jeton(elsewhere, usager_id="U-1", client_id="demo-cd33", now=NOW, ttl=timedelta(hours=1))
    assert open_jeton(here, jeton, client_id="demo-cd33", now=NOW) == "U-1"
    # Jetons sealed here before the rotation still open on the other replica (the old key is kept).
    assert latest_keyset(here).current_jeton_kid == elsewhere.current_jeton_kid


def test_a_forged_key_id_is_still_refused(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    here = load_keyset(path)
    (tmp_path / "other").mkdir()
    other = load_keyset(_key_file(tmp_path / "other"))  # another deployment's keys: never ours
    jeton = issue_jeton(other, usager_id="U-1", client_id="demo-cd33", now=NOW, ttl=timedelta(hours=1))
    with pytest.raises(JetonInvalide):
        open_jeton(here, jeton, client_id="demo-cd33", now=NOW)
