"""An export verifies on its own, with the public key only; edited exports are caught and located."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoints import public_key_pem
from audit.export import export_records
from audit.retention import purge_expired
from audit.verify import VerifyReport, verify_export
from relais.cli.audit import audit_group
from relais.core.db import Database
from tests.audit.journal_fixtures import T0, checkpoint, first_problem, public_keys, settings_for, write_events


def _export(database: Database, event_ids: list[int] | None = None) -> list[dict[str, Any]]:
    with database.session() as session:
        return list(export_records(session, event_ids))


def _verify(records: list[dict[str, Any]], settings: Any) -> VerifyReport:
    return verify_export([json.dumps(record, ensure_ascii=False) for record in records], public_keys(settings))


def _journal(database: Database, tmp_path: Path) -> tuple[list[int], Any]:
    settings = settings_for(database, tmp_path)
    ids = write_events(database, 6)
    checkpoint(database, settings)
    ids += write_events(database, 4)
    checkpoint(database, settings)
    return ids, settings


def _leaf_positions(records: list[dict[str, Any]]) -> list[int]:
    return [i for i, record in enumerate(records) if record["type"] in ("event", "leaf")]


def test_full_export_verifies_offline(database: Database, tmp_path: Path) -> None:
    _, settings = _journal(database, tmp_path)
    records = _export(database)
    report = _verify(records, settings)
    assert report.ok, report.problems
    assert (report.leaves, report.events, report.checkpoints) == (10, 10, 2)
    other = verify_export([json.dumps(r) for r in records], [Ed25519PrivateKey.generate().public_key()])
    assert [p.kind for p in other.problems] == ["cle_inconnue", "cle_inconnue"]


def test_edited_full_exports_are_located(database: Database, tmp_path: Path) -> None:
    _, settings = _journal(database, tmp_path)
    records = _export(database)
    leaves = _leaf_positions(records)

    altered = [dict(r) for r in records]
    altered[leaves[4]] = {**altered[leaves[4]], "event": {**altered[leaves[4]]["event"], "decision": "denied"}}
    assert (first_problem(_verify(altered, settings)).kind, first_problem(_verify(altered, settings)).leaf_index) == (
        "contenu_modifie",
        4,
    )

    missing = [r for i, r in enumerate(records) if i != leaves[2]]
    first = _verify(missing, settings).first
    assert first is not None and (first.kind, first.leaf_index) == ("feuille_manquante", 2)

    truncated = records[: leaves[8]]
    first = _verify(truncated, settings).first
    assert first is not None and (first.kind, first.leaf_index) == ("journal_tronque", 8)

    replayed = records + [records[leaves[1]], records[leaves[2]]]
    first = _verify(replayed, settings).first
    assert first is not None and (first.kind, first.leaf_index) == ("segment_rejoue", 1)

    swapped = list(records)
    swapped[leaves[3]], swapped[leaves[5]] = (
        {**records[leaves[5]], "leafIndex": 3},
        {**records[leaves[3]], "leafIndex": 5},
    )
    first = _verify(swapped, settings).first
    # Leaf 3 now holds seq 6, so leaf 4 (seq 5) is the first out of order.
    assert first is not None and (first.kind, first.leaf_index) == ("ordre_modifie", 4)


def test_selective_export_carries_its_proofs(database: Database, tmp_path: Path) -> None:
    ids, settings = _journal(database, tmp_path)
    late = write_events(database, 1)
    records = _export(database, [ids[7], ids[2], late[0]])
    assert [r.get("leafIndex") for r in records if r["type"] == "event"] == [2, 7, None]
    report = _verify(records, settings)
    assert report.ok, report.problems
    assert (report.events, report.pending) == (3, 1)

    forged = [dict(r) for r in records]
    event = next(r for r in forged if r.get("leafIndex") == 7)
    event["proof"] = [event["proof"][0][::-1], *event["proof"][1:]]
    first = _verify(forged, settings).first
    assert first is not None and (first.kind, first.leaf_index) == ("preuve_invalide", 7)

    edited = [dict(r) for r in records]
    event = next(r for r in edited if r.get("leafIndex") == 2)
    event["event"] = {**event["event"], "organisation": "CD93"}
    first = _verify(edited, settings).first
    assert first is not None and (first.kind, first.leaf_index) == ("contenu_modifie", 2)


def test_a_purged_journal_exports_and_verifies(database: Database, tmp_path: Path) -> None:
    from datetime import timedelta

    settings = settings_for(database, tmp_path)
    write_events(database, 3, start=T0)
    now = T0 + timedelta(days=500)
    write_events(database, 2, start=now)
    purge_expired(database, settings, now=now)
    checkpoint(database, settings, now=now)
    report = _verify(_export(database), settings)
    assert report.ok, report.problems
    assert (report.purged, report.events) == (3, 3)


def test_cli_verifies_an_export_file(database: Database, tmp_path: Path) -> None:
    _, settings = _journal(database, tmp_path)
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _export(database)) + "\n")
    key = tmp_path / "cle.pem"
    key.write_text(public_key_pem(settings))
    runner = CliRunner()
    ok = runner.invoke(audit_group, ["verify", "--export", str(export), "--public-key", str(key)])
    assert ok.exit_code == 0 and "Journal intègre : 10 feuilles" in ok.output
    lines = export.read_text().splitlines()
    export.write_text("\n".join(lines[:-2]) + "\n")
    bad = runner.invoke(audit_group, ["verify", "--export", str(export), "--public-key", str(key), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["problems"][0]["kind"] == "journal_tronque"
