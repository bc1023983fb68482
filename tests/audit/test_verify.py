"""Adversarial tests of ``relais audit verify``: each kind of tampering with the database is
detected and located (leaf index, seq or checkpoint), and a clean journal verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from audit import merkle, verify_scan
from audit.checkpoints import checkpoint_note, key_id, sign
from audit.journal import event_content, event_leaf_hash, sequence_pending
from audit.verify import VerifyReport, verify_database
from relais.core.config import Settings
from relais.core.db import Database
from tests.audit.journal_fixtures import (
    T0,
    checkpoint,
    events_by_seq,
    first_problem,
    public_keys,
    settings_for,
    tampering,
    write_events,
)


def _journal(database: Database, tmp_path: Path, count: int = 8) -> tuple[list[int], Settings]:
    settings = settings_for(database, tmp_path)
    ids = write_events(database, count)
    checkpoint(database, settings)
    return ids, settings


@pytest.fixture(autouse=True)
def _small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ranges of 2 leaves: an 8-leaf journal is scanned in 4 ranges, so that tampering lands
    # inside a range and across two of them.
    monkeypatch.setattr(verify_scan, "CHUNK", 2)


def _verify(database: Database, settings: Settings) -> VerifyReport:
    """The report, checked to be the same from the reference checker and from the fast scan
    (in this process and in two worker processes)."""
    with database.session() as session:
        reference = verify_database(session, public_keys(settings), reference=True)
    for workers in (1, 2):
        with database.session() as session:
            fast = verify_database(session, public_keys(settings), workers=workers)
        assert fast.as_json() == reference.as_json()
    return fast


def test_a_clean_journal_verifies_with_counts(database: Database, tmp_path: Path) -> None:
    _, settings = _journal(database, tmp_path, 5)
    write_events(database, 2, operation="autre")  # committed, not yet sequenced
    report = _verify(database, settings)
    assert report.ok, report.problems
    assert (report.leaves, report.events, report.checkpoints, report.pending) == (5, 5, 1, 2)
    assert report.signatures_checked
    assert "Journal intègre : 5 feuilles" in report.summary()


def test_altered_payload_is_located(database: Database, tmp_path: Path) -> None:
    ids, settings = _journal(database, tmp_path)
    with tampering(database) as session:
        session.execute(text("UPDATE audit_event SET http_status = 403 WHERE id = :id"), {"id": ids[3]})
    report = _verify(database, settings)
    assert not report.ok
    assert (first_problem(report).kind, first_problem(report).leaf_index) == ("contenu_modifie", 3)
    assert "feuille 3" in report.summary()


def test_altered_payload_with_recomputed_hashes_breaks_the_signed_checkpoint(
    database: Database, tmp_path: Path
) -> None:
    ids, settings = _journal(database, tmp_path)
    with tampering(database) as session:
        session.execute(text("UPDATE audit_event SET organisation = 'CD93' WHERE id = :id"), {"id": ids[5]})
        row = session.execute(text("SELECT * FROM audit_event WHERE id = :id"), {"id": ids[5]}).mappings().one()
        forged = event_leaf_hash(event_content(_typed(database, ids[5], session))).hex()
        session.execute(text("UPDATE audit_event SET hash = :h WHERE id = :id"), {"h": forged, "id": row["id"]})
        session.execute(
            text("UPDATE audit_leaf SET leaf_hash = :h WHERE event_id = :id"), {"h": forged, "id": row["id"]}
        )
    report = _verify(database, settings)
    kinds = [problem.kind for problem in report.problems]
    assert kinds[0] == "point_de_controle_divergent" and first_problem(report).checkpoint_id == 1
    assert "divergence entre les feuilles 0 et 7" in first_problem(report).message


def _typed(database: Database, event_id: int, session):  # type: ignore[no-untyped-def]
    from audit.models import AuditEvent

    event = session.get(AuditEvent, event_id)
    session.refresh(event)
    return event


def test_deleted_leaf_is_located(database: Database, tmp_path: Path) -> None:
    ids, settings = _journal(database, tmp_path)
    with tampering(database) as session:
        session.execute(text("DELETE FROM audit_leaf WHERE event_id = :id"), {"id": ids[2]})
        session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[2]})
    report = _verify(database, settings)
    assert (first_problem(report).kind, first_problem(report).leaf_index) == ("feuille_manquante", 2)


def test_deleted_event_outside_a_purge_is_located(database: Database, tmp_path: Path) -> None:
    ids, settings = _journal(database, tmp_path)
    with tampering(database) as session:
        session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[6]})
    report = _verify(database, settings)
    assert (first_problem(report).kind, first_problem(report).leaf_index) == ("evenement_supprime", 6)


def test_reordered_leaves_are_located(database: Database, tmp_path: Path) -> None:
    ids, settings = _journal(database, tmp_path)
    with database.session() as session:
        leaves = dict(session.execute(text("SELECT event_id, leaf_hash FROM audit_leaf")).all())
    with tampering(database) as session:
        # Swap leaves 3 and 4 wholesale: each leaf still matches its event's content.
        session.execute(text("DELETE FROM audit_leaf WHERE leaf_index IN (3, 4)"))
        for index, event_id in ((3, ids[4]), (4, ids[3])):
            session.execute(
                text("INSERT INTO audit_leaf (leaf_index, event_id, leaf_hash) VALUES (:i, :e, :h)"),
                {"i": index, "e": event_id, "h": leaves[event_id]},
            )
    report = _verify(database, settings)
    assert (first_problem(report).kind, first_problem(report).leaf_index) == ("ordre_modifie", 4)
    assert {problem.kind for problem in report.problems} >= {"ordre_modifie", "point_de_controle_divergent"}


def test_truncated_tail_is_located(database: Database, tmp_path: Path) -> None:
    ids, settings = _journal(database, tmp_path)
    with database.session() as reader:
        rows = reader.execute(text("SELECT leaf_hash FROM audit_leaf ORDER BY leaf_index")).scalars()
        hashes = [bytes.fromhex(h) for h in rows]
    with tampering(database) as session:
        session.execute(text("DELETE FROM audit_leaf WHERE leaf_index >= 6"))
        session.execute(text("DELETE FROM audit_event WHERE id IN (:a, :b)"), {"a": ids[6], "b": ids[7]})
        # Cover the tracks: the head says 6 leaves, with the right root.
        session.execute(
            text("UPDATE audit_tree_head SET tree_size = 6, root_hash = :r"), {"r": merkle.root_hash(hashes[:6]).hex()}
        )
    report = _verify(database, settings)
    assert (first_problem(report).kind, first_problem(report).leaf_index) == ("journal_tronque", 6)
    assert "n'a plus que 6 feuilles" in first_problem(report).message


def test_forked_checkpoint_is_located(database: Database, tmp_path: Path) -> None:
    _, settings = _journal(database, tmp_path)
    private = settings_key(settings)
    forged_root = merkle.leaf_hash(b"another history").hex()
    with database.transaction() as session:  # inserting is allowed: the journal is append-only
        session.execute(
            text(
                "INSERT INTO audit_checkpoint (tree_size, root_hash, issued_at, key_id, signature)"
                " VALUES (8, :r, :t, :k, :s)"
            ),
            {
                "r": forged_root,
                "t": T0.replace(tzinfo=None) if database.dialect == "sqlite" else T0,
                "k": key_id(private.public_key()),
                "s": sign(private, checkpoint_note(8, forged_root, T0)),
            },
        )
    report = _verify(database, settings)
    assert [p.kind for p in report.problems] == ["point_de_controle_divergent"]
    assert first_problem(report).checkpoint_id == 2


def settings_key(settings: object) -> Ed25519PrivateKey:
    from audit.checkpoints import signing_key

    return signing_key(settings)  # type: ignore[arg-type]


def test_checkpoint_signed_by_another_key_is_reported(database: Database, tmp_path: Path) -> None:
    _, settings = _journal(database, tmp_path)
    other = Ed25519PrivateKey.generate()
    with database.session() as session:
        size, root = session.execute(text("SELECT tree_size, root_hash FROM audit_checkpoint")).one()
    with database.transaction() as session:
        session.execute(
            text(
                "INSERT INTO audit_checkpoint (tree_size, root_hash, issued_at, key_id, signature)"
                " VALUES (:n, :r, :t, :k, :s)"
            ),
            {
                "n": size,
                "r": root,
                "t": T0.replace(tzinfo=None) if database.dialect == "sqlite" else T0,
                "k": key_id(other.public_key()),
                "s": sign(other, checkpoint_note(size, root, T0)),
            },
        )
    report = _verify(database, settings)
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [("cle_inconnue", 2)]


def test_checkpoint_with_a_bad_signature_is_reported(database: Database, tmp_path: Path) -> None:
    _, settings = _journal(database, tmp_path)
    with tampering(database) as session:
        session.execute(text("UPDATE audit_checkpoint SET tree_size = 7"))
    report = _verify(database, settings)
    assert ("signature_invalide", 1) in [(p.kind, p.checkpoint_id) for p in report.problems]


def test_replayed_segment_is_located(database: Database, tmp_path: Path) -> None:
    ids, settings = _journal(database, tmp_path, 6)
    with database.session() as session:
        originals = [event_content(event) for event in events_by_seq(session)[1:4]]
    # Re-insert copies of events 1 to 3 (new seq, valid hashes), then let them be sequenced.
    with database.transaction() as session:
        next_seq = 100
        for content in originals:
            copy = {**content, "seq": next_seq}
            next_seq += 1
            session.execute(
                text(
                    "INSERT INTO audit_event (seq, occurred_at, request_id, channel, operation, client_id,"
                    " organisation, agent_identifiant, usager_id, decision, http_status, scopes, details,"
                    " prev_hash, hash)"
                    " VALUES (:seq, :t, :request_id, :channel, :operation, :client_id, :organisation,"
                    " :agent_identifiant, :usager_id, :decision, :http_status, :scopes, :details, '', :hash)"
                ),
                {
                    **copy,
                    "t": _db_time(database, copy["occurred_at"]),
                    "details": json.dumps(copy["details"]),
                    "hash": event_leaf_hash(copy).hex(),
                },
            )
    sequence_pending(database)
    checkpoint(database, settings)
    report = _verify(database, settings)
    assert (first_problem(report).kind, first_problem(report).leaf_index) == ("segment_rejoue", 6)


def _db_time(database: Database, iso: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    moment = datetime.fromisoformat(iso)
    return moment.replace(tzinfo=None).isoformat(sep=" ") if database.dialect == "sqlite" else moment


def test_event_hash_stored_at_append_catches_an_edit_before_sequencing(database: Database, tmp_path: Path) -> None:
    settings = settings_for(database, tmp_path)
    ids = write_events(database, 3)
    with tampering(database) as session:
        session.execute(text("UPDATE audit_event SET reason = 'rien' WHERE id = :id"), {"id": ids[1]})
    checkpoint(database, settings)
    report = _verify(database, settings)
    assert (first_problem(report).kind, first_problem(report).leaf_index) == ("contenu_modifie", 1)
