"""Incidents' follow-up through the audit API: severity, assignee, who was notified and when."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.audit.audit_api_support import AUDIT, agent_with_role, cssi, events, rgc, rssi
from tests.audit.test_incidents import _incident
from tests.support.hub import Hub


def _post(hub: Hub, headers: dict[str, str], incident: str, what: str, **body: Any) -> Any:
    return hub.client.post(f"{AUDIT}/incidents/{incident}/{what}", json=body, headers=headers)


def test_severity_assignee_and_notifications_are_recorded_and_shown(hub: Hub) -> None:
    incident = _incident(hub)
    headers = rssi(hub, "CD33")
    opened = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=headers).json()
    assert opened["gravite"] == "moyenne" and opened["assigneA"] is None and opened["notifications"] == []
    colleague = agent_with_role(hub, "CD33", None, "AGT-SECU")
    followed = _post(hub, headers, incident, "suivi", gravite="critique", assigneA=colleague)
    assert followed.status_code == 200, followed.text
    assert followed.json()["gravite"] == "critique" and followed.json()["assigneA"] == colleague
    audited = events(hub)[-1]
    assert audited.operation == "suivreIncident" and audited.details == {
        "gravite": {"avant": "moyenne", "apres": "critique"},
        "assigne": {"avant": None, "apres": colleague},
    }
    when = (hub.clock.now - timedelta(hours=1)).isoformat()
    notified = _post(hub, headers, incident, "notifications", destinataire="CSSI France Travail", le=when)
    assert notified.status_code == 201, notified.text
    (record,) = notified.json()["notifications"]
    assert record["destinataire"] == "CSSI France Travail" and record["auteur"].startswith("agent:")
    # Recording a notification does not move the state: the transition says NOTIFIE.
    assert notified.json()["etat"] == "OUVERT"
    unassigned = _post(hub, headers, incident, "suivi", assigneA=None)
    assert unassigned.status_code == 200 and unassigned.json()["assigneA"] is None


def test_bad_follow_ups_are_refused(hub: Hub) -> None:
    incident = _incident(hub)
    headers = cssi(hub)
    outsider = agent_with_role(hub, "CD93", None, "AGT-93")
    wrong = _post(hub, headers, incident, "suivi", assigneA=outsider)
    assert wrong.status_code == 400 and wrong.json()["codeErreur"] == "ASSIGNE_INVALIDE"
    assert _post(hub, headers, incident, "suivi", gravite="grave").status_code == 400
    future = (hub.clock.now + timedelta(days=1)).isoformat()
    late = _post(hub, headers, incident, "notifications", destinataire="DPO", le=future)
    assert late.status_code == 400 and late.json()["codeErreur"] == "DATE_NOTIFICATION_FUTURE"
    blank = _post(hub, headers, incident, "notifications", destinataire="   ")
    assert blank.status_code == 400 and blank.json()["codeErreur"] == "DESTINATAIRE_OBLIGATOIRE"
    closed = hub.client.post(
        f"{AUDIT}/incidents/{incident}/transitions",
        json={"etat": "CLOS", "commentaire": "Faux positif"},
        headers=headers,
    )
    assert closed.status_code == 200
    frozen = _post(hub, headers, incident, "suivi", gravite="faible")
    assert frozen.status_code == 409 and frozen.json()["codeErreur"] == "INCIDENT_CLOS"


def test_only_the_incident_security_officers_follow_it_up(hub: Hub) -> None:
    incident = _incident(hub)
    assert _post(hub, rgc(hub, "CD33"), incident, "suivi", gravite="faible").status_code == 403
    assert _post(hub, rssi(hub, "CD93"), incident, "suivi", gravite="faible").status_code == 404
    assert _post(hub, rssi(hub, "CD93"), incident, "notifications", destinataire="DPO").status_code == 404
    detail = hub.client.get(f"{AUDIT}/incidents/{incident}", headers=rssi(hub, "CD33")).json()
    assert detail["gravite"] == "moyenne" and detail["notifications"] == []
