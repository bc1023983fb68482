"""Signed checkpoints, the signing key file, and the inclusion and consistency proofs a third
party checks against them."""

from __future__ import annotations

import base64
import stat
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text

from audit import checkpoints, journal, merkle
from audit.checkpoints import (
    checkpoint_json,
    consistency_proof,
    create_checkpoint,
    inclusion_proof,
    latest_checkpoint,
    load_public_key,
    public_key_pem,
    signature_valid,
)
from relais.cli.audit import audit_group
from relais.core.db import Database
from tests.audit.journal_fixtures import T0, checkpoint, settings_for, write_events


def test_the_key_lives_in_its_own_private_file_and_its_public_half_verifies(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    write_events(database, 3)
    made = checkpoint(database, settings)
    key_file = tmp_path / "audit-signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = load_public_key(public_key_pem(settings).encode())
    document = checkpoint_json(made)
    assert document["treeSize"] == 3 and document["note"].startswith("relais.audit/v1\n3\n")
    assert signature_valid(public, document["note"], document["signature"])
    assert not signature_valid(public, document["note"].replace("\n3\n", "\n4\n"), document["signature"])
    public.verify(base64.b64decode(document["signature"]), document["note"].encode())


def test_a_checkpoint_only_when_the_tree_grew_unless_forced(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    assert create_checkpoint(database, settings, now=T0) is None
    write_events(database, 2)
    assert checkpoint(database, settings).tree_size == 2
    assert create_checkpoint(database, settings, now=T0) is None
    assert checkpoint(database, settings, force=True).tree_size == 2


def test_inclusion_proof_of_an_event_checks_against_the_signed_root(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    ids = write_events(database, 11)
    made = checkpoint(database, settings)
    with database.session() as session:
        proof = inclusion_proof(session, ids[6])
        assert inclusion_proof(session, 999_999) is None
    assert proof is not None
    assert (proof.leaf_index, proof.tree_size, proof.root_hash) == (6, 11, made.root_hash)
    path = [bytes.fromhex(node) for node in proof.path]
    root = bytes.fromhex(made.root_hash)
    assert merkle.verify_inclusion(bytes.fromhex(proof.leaf_hash), 6, 11, path, root)
    assert not merkle.verify_inclusion(bytes.fromhex(proof.leaf_hash), 5, 11, path, root)


def test_an_event_not_yet_checkpointed_has_no_proof_yet(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    write_events(database, 2)
    checkpoint(database, settings)
    late = write_events(database, 1)
    with database.session() as session:
        assert inclusion_proof(session, late[0]) is None


def test_consistency_proof_between_two_checkpoints(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    write_events(database, 5)
    old = checkpoint(database, settings)
    write_events(database, 9)
    new = checkpoint(database, settings)
    with database.session() as session:
        proof = [bytes.fromhex(node) for node in consistency_proof(session, old.tree_size, new.tree_size)]
    old_root, new_root = bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash)
    assert merkle.verify_consistency(5, 14, old_root, new_root, proof)
    assert not merkle.verify_consistency(5, 14, merkle.leaf_hash(b"forged"), new_root, proof)


def test_cli_checkpoint_public_key_and_verify(database: Database, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from relais.core.config import get_settings

    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_DATABASE_URL", database.url)
    get_settings.cache_clear()
    try:
        write_events(database, 4)
        runner = CliRunner()
        made = runner.invoke(audit_group, ["checkpoint"])
        assert made.exit_code == 0 and "4 feuilles" in made.output
        key = runner.invoke(audit_group, ["public-key"])
        assert isinstance(load_public_key(key.output.encode()), Ed25519PublicKey)
        (tmp_path / "cle.pem").write_text(key.output)
        verified = runner.invoke(audit_group, ["verify", "--public-key", str(tmp_path / "cle.pem")])
        assert verified.exit_code == 0, verified.output
        assert (
            "Journal intègre : 4 feuilles, 4 événements, 1 points de contrôle (signatures vérifiées)" in verified.output
        )
    finally:
        get_settings.cache_clear()


def test_the_app_job_signs_what_is_pending(database: Database, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from api.jobs import CHECKPOINT_JOB

    settings = settings_for(database, tmp_path)
    services = SimpleNamespace(database=database, settings=settings, clock=lambda: T0)
    assert CHECKPOINT_JOB.interval(services) == 300  # type: ignore[arg-type]
    write_events(database, 3)
    CHECKPOINT_JOB.run(services, lambda seconds: False)  # type: ignore[arg-type]
    CHECKPOINT_JOB.run(services, lambda seconds: False)  # type: ignore[arg-type]
    with database.session() as session:
        latest = latest_checkpoint(session)
        count = session.execute(text("SELECT count(*) FROM audit_checkpoint")).scalar_one()
    assert latest is not None and (latest.tree_size, count) == (3, 1)


def test_on_sqlite_a_backlog_is_sequenced_by_steps_and_appends_go_in_between(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has one writer: the checkpoint sequences a long backlog in short transactions,
    so that a call's audit event, appended meanwhile, is committed long before the checkpoint
    ends (in one transaction, it waited for all of it). The signed tree holds every event."""
    if database.dialect != "sqlite":
        pytest.skip("on PostgreSQL appends never wait for the sequencer's transaction")
    monkeypatch.setattr(checkpoints, "SEQUENCING_STEP", 20)
    monkeypatch.setattr(journal, "SEQUENCING_PAUSE_SECONDS", 0.03)
    settings = settings_for(database, tmp_path)
    write_events(database, 300)
    ended: list[float] = []
    running = threading.Thread(target=lambda: (checkpoint(database, settings), ended.append(time.monotonic())))
    running.start()
    deadline = time.monotonic() + 10
    while True:  # the first step is committed: the checkpoint is under way
        with database.session() as session:
            if session.execute(text("SELECT last_seq FROM audit_tree_head")).scalar_one() > 0:
                break
        assert time.monotonic() < deadline
        time.sleep(0.005)
    write_events(database, 1, operation="pendantLeCheckpoint")
    appended = time.monotonic()
    running.join()
    assert ended and appended < ended[0] - 0.1  # well before: steps were left to sequence
    latest = checkpoint(database, settings, force=True)
    assert latest.tree_size == 301
