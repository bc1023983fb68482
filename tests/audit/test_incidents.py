"""Incidents through the API: the security officer qualifies, notifies and closes them, each
move with a comment, within the 48-hour notification clock; others' incidents stay hidden."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import select

from audit.detection import run_detection
from relais.core.outbox import OutboxMessage
from tests.audit.audit_api_support import AUDIT, cssi, events, read_file, rgc, rssi
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT

# The end-to-end hub fixtures (a real app on a fresh database per test).
NO_LAG = {"audit_detection_lag_seconds": 0}


def _incident(hub: Hub) -> str:
    """One incident of CD33, raised by the bulk-read rule on real partner calls."""
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE_SANS_CONTRAT)
    settings = hub.services.settings.model_copy(update={"audit_bulk_read_usagers": 2, "audit_detection_lag_seconds": 0})
    (opened,) = run_detection(hub.services.database, settings, now=hub.clock).opened
    return opened


def _move(hub: Hub, headers: dict[str, str], incident: str, **body: Any) -> Any:
    return hub.client.post(f"{AUDIT}/incidents/{incident}/transitions", json=body, headers=headers)


def test_qualify_notify_close_with_comments_and_history(hub: Hub) -> None:
    incident = _incident(hub)
    headers = rssi(hub, "CD33")
    listing = hub.client.get(f"{AUDIT}/incidents", params={"etat": "OUVERT"}, headers=headers).json()
    assert [item["id"] for item in listing["incidents"]] == [incident]
    detail = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=headers).json()
    assert detail["regle"] == "lectures_massives" and detail["notificationEnRetard"] is False
    assert detail["preuves"] and all(event["organisation"] == "CD33" for event in detail["preuves"])

    for state, comment in (
        ("QUALIFIE", "Lecture en masse confirmée, hors mission"),
        ("NOTIFIE", "DPO de France Travail informé par courriel"),
        ("CLOS", "Habilitation retirée, agent sensibilisé"),
    ):
        response = _move(hub, headers, incident, etat=state, commentaire=comment)
        assert response.status_code == 200, response.text
        assert response.json()["etat"] == state
        audited = events(hub)[-1]
        assert audited.operation == "changerEtatIncident" and audited.target == f"incident:{incident}"
        assert audited.details is not None and audited.details["apres"] == state
        assert comment not in str(audited.details)
    history = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=headers).json()["historique"]
    assert [item["etatApres"] for item in history] == ["OUVERT", "QUALIFIE", "NOTIFIE", "CLOS"]
    assert history[0]["auteur"] == "relais:detection" and history[1]["auteur"].startswith("agent:")
    final = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=headers).json()
    assert final["notifieLe"] and final["closLe"]


def test_forbidden_moves_stale_state_and_missing_comment(hub: Hub) -> None:
    incident = _incident(hub)
    headers = cssi(hub)
    skip = _move(hub, headers, incident, etat="NOTIFIE", commentaire="trop tôt")
    assert skip.status_code == 409 and skip.json()["codeErreur"] == "TRANSITION_INTERDITE"
    stale = _move(hub, headers, incident, etat="QUALIFIE", commentaire="ok", etatActuel="QUALIFIE")
    assert stale.status_code == 409 and stale.json()["codeErreur"] == "MODIFICATION_CONCURRENTE"
    blank = _move(hub, headers, incident, etat="QUALIFIE", commentaire="   ")
    assert blank.status_code == 400 and blank.json()["codeErreur"] == "COMMENTAIRE_OBLIGATOIRE"
    missing = _move(hub, headers, incident, etat="QUALIFIE")
    assert missing.status_code == 400 and missing.json()["codeErreur"] == "REQUETE_INVALIDE"
    # A false positive is closed straight away; a closed incident moves no more.
    assert (
        _move(hub, headers, incident, etat="CLOS", commentaire="Faux positif : campagne de relance").status_code == 200
    )
    assert _move(hub, headers, incident, etat="QUALIFIE", commentaire="réouverture").status_code == 409


def test_notification_clock_runs_out_after_48_hours(hub: Hub) -> None:
    incident = _incident(hub)
    hub.clock.now += timedelta(hours=47)
    # A fresh admin token each time: they last an hour.
    on_time = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=rssi(hub, "CD33")).json()
    assert on_time["notificationEnRetard"] is False
    hub.clock.now += timedelta(hours=2)
    late = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=rssi(hub, "CD33")).json()
    assert late["notificationEnRetard"] is True
    # The detector's next runs remind the security officers, once.
    for _ in range(2):
        run_detection(hub.services.database, hub.services.settings.model_copy(update=NO_LAG), now=hub.clock)
    with hub.services.database.session() as session:
        reminders = session.exec(
            select(OutboxMessage).where(OutboxMessage.topic == "audit.incident.echeance_depassee")
        ).all()
    assert sorted(message.recipient for message in reminders) == ["cssi", "rssi:CD33"]


def test_other_organisations_and_other_roles_do_not_see_the_incident(hub: Hub) -> None:
    incident = _incident(hub)
    other = rssi(hub, "CD93")
    assert hub.client.get(f"{AUDIT}/incidents", headers=other).json()["total"] == 0
    hidden = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=other)
    assert hidden.status_code == 404 and hidden.json()["codeErreur"] == "INCIDENT_INCONNU"
    assert _move(hub, other, incident, etat="CLOS", commentaire="pas à moi").status_code == 404
    assert hub.client.get(f"{AUDIT}/incidents/{incident}", headers=rgc(hub, "CD33")).status_code == 403
    assert hub.client.get(f"{AUDIT}/incidents/{incident}", headers=cssi(hub)).status_code == 200


def test_evidence_pack_verifies_offline(hub: Hub) -> None:
    from audit.checkpoints import load_public_key
    from audit.verify import verify_export

    incident = _incident(hub)
    headers = rssi(hub, "CD33")
    response = hub.client.get(f"{AUDIT}/incidents/{incident}/preuves", headers=headers)
    assert response.status_code == 200
    lines = response.text.splitlines()
    proved = [record for record in map(json.loads, lines) if record["type"] == "event"]
    detail = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=headers).json()
    assert sorted(record["id"] for record in proved) == sorted(event["id"] for event in detail["preuves"])
    assert all(record["proof"] is not None for record in proved)
    key = hub.client.get(f"{AUDIT}/cle-publique", headers=headers).json()["clePublique"]
    assert verify_export(lines, [load_public_key(key.encode())]).ok
