"""Exports: CSV for reading, JSON Lines carrying a signed checkpoint and each event's inclusion
proof, so that the file verifies on its own with the public key."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from audit.checkpoints import load_public_key
from audit.verify import verify_export
from tests.audit.audit_api_support import AUDIT, events, read_file, rssi
from tests.support.hub import Hub
from tests.support.people import GIRONDE, SEINE_SAINT_DENIS
from tests.support.scopes import INFOS

# The end-to-end hub fixtures (a real app on a fresh database per test).


def _export(hub: Hub, headers: dict[str, str], **body: object) -> Any:
    return hub.client.post(f"{AUDIT}/evenements/export", json=body, headers=headers)


def test_csv_export_lists_the_matching_events_oldest_first(hub: Hub) -> None:
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE)
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    response = _export(hub, rssi(hub), format="csv", usager={"nir": GIRONDE.nir})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 4
    assert [int(row["id"]) for row in rows] == sorted(int(row["id"]) for row in rows)
    assert {row["organisation"] for row in rows} == {"CD33"}
    assert GIRONDE.nir13 not in response.text
    audited = events(hub)[-1]
    assert audited.operation == "exporterEvenements" and audited.details == {
        "filtres": ["usager"],
        "format": "csv",
    }


def test_csv_cells_cannot_become_spreadsheet_formulas(hub: Hub) -> None:
    token = hub.token()
    hub.client.get(
        f"{INFOS}",
        headers=hub.headers(token, **{"pa-identifiant-agent": "=HYPERLINK(1)", "ft-jeton-usager": "x"}),
    )
    response = _export(hub, rssi(hub), format="csv", agentIdentifiant="=HYPERLINK(1)")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows and rows[0]["agentIdentifiant"] == "'=HYPERLINK(1)"


def test_jsonl_export_verifies_offline_with_the_public_key(hub: Hub) -> None:
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE)
    headers = rssi(hub)
    response = _export(hub, headers, format="jsonl", usager={"numeroFranceTravail": GIRONDE.numero})
    assert response.status_code == 200
    lines = response.text.splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["type"] == "relais-audit-export"
    assert any(record["type"] == "checkpoint" for record in records)
    exported = [record for record in records if record["type"] == "event"]
    assert len(exported) == 4 and all(record["proof"] is not None for record in exported)
    key = hub.client.get(f"{AUDIT}/cle-publique", headers=headers).json()["clePublique"]
    report = verify_export(lines, [load_public_key(key.encode())])
    assert report.ok, report

    # A tampered line is detected.
    altered = [json.loads(line) for line in lines]
    altered[-1]["event"]["operation"] = "autreChose"
    tampered = verify_export([json.dumps(record) for record in altered], [load_public_key(key.encode())])
    assert not tampered.ok


def test_checkpoints_inclusion_and_consistency_proofs_through_the_api(hub: Hub) -> None:
    from audit import merkle
    from audit.checkpoints import create_checkpoint

    read_file(hub, GIRONDE)
    first = create_checkpoint(hub.services.database, hub.services.settings, now=hub.clock.now, force=True)
    read_file(hub, SEINE_SAINT_DENIS, "cd93")
    second = create_checkpoint(hub.services.database, hub.services.settings, now=hub.clock.now, force=True)
    assert first is not None and second is not None and first.tree_size < second.tree_size
    headers = rssi(hub)
    latest = hub.client.get(f"{AUDIT}/points-de-controle/dernier", headers=headers).json()
    assert latest["treeSize"] == second.tree_size
    old = hub.client.get(f"{AUDIT}/points-de-controle/{first.tree_size}", headers=headers).json()
    assert old["rootHash"] == first.root_hash

    read = next(event for event in events(hub) if event.operation == "recupererDonneesParIdRci")
    proof = hub.client.get(f"{AUDIT}/evenements/{read.id}/preuve-inclusion", headers=headers).json()
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leafHash"]),
        proof["leafIndex"],
        proof["treeSize"],
        [bytes.fromhex(node) for node in proof["path"]],
        bytes.fromhex(latest["rootHash"]),
    )
    consistency = hub.client.get(
        f"{AUDIT}/preuves/coherence", params={"de": first.tree_size, "a": second.tree_size}, headers=headers
    ).json()
    assert merkle.verify_consistency(
        first.tree_size,
        second.tree_size,
        bytes.fromhex(first.root_hash),
        bytes.fromhex(second.root_hash),
        [bytes.fromhex(node) for node in consistency["preuve"]],
    )
    bad = hub.client.get(f"{AUDIT}/preuves/coherence", params={"de": 5, "a": 4}, headers=headers)
    assert bad.status_code == 400 and bad.json()["codeErreur"] == "TAILLE_INVALIDE"
    # Another organisation's security officer gets no proof about CD33's events.
    hidden = hub.client.get(f"{AUDIT}/evenements/{read.id}/preuve-inclusion", headers=rssi(hub, "CD93"))
    assert hidden.status_code == 404


def test_an_export_filtered_on_an_empty_usager_is_a_clear_400(hub: Hub) -> None:
    response = _export(hub, rssi(hub, "CD33"), format="csv", usager={})
    assert response.status_code == 400
    assert response.json()["codeHttp"] == 400 and "usager" in response.json()["message"]
