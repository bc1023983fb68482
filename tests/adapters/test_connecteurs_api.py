"""Connecteurs v1: a forced failure is visible and replayable by the organisation's RGC."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from adapters.outbound.webhook import WebhookSender
from adapters.outbound.worker import Worker
from audit.journal import JournalRecorder
from audit.models import AuditEvent
from habilitations.models import CSSI, OPERATEUR, RGC_SUPPLEANT, RSSI
from tests.adapters.outbound_support import add_connector, admin_headers, editor, publish
from tests.support.hub import Hub
from tests.support.hub import hub as hub
from tests.support.hub import hub_app as hub_app

BASE = "/relais/connecteurs/v1/connecteurs"


def worker(hub: Hub) -> Worker:
    services = hub.services
    return Worker(
        services.database, services.keys, services.settings, WebhookSender(), audit=JournalRecorder(), clock=hub.clock
    )


def test_a_forced_failure_is_visible_then_replayed(hub: Hub) -> None:
    rgc = admin_headers(hub, "CD33", RGC_SUPPLEANT, "RGC-CD33")
    with editor({}) as fake:
        fake.state.keys.update(add_connector(hub.services.database, hub.services.keys, fake.url, max_attempts=2))
        first, second = publish(hub.services.database, 2, now=hub.clock.now)
        fake.switches.fail = 4
        runner = worker(hub)
        runner.run_until_idle()
        hub.clock.now += timedelta(hours=1)
        runner.run_until_idle()

        status = hub.client.get(f"{BASE}/solis-cd33", headers=rgc)
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["compteurs"] == {"EN_ATTENTE": 0, "EN_ECHEC": 0, "LIVRE": 0, "ABANDONNE": 2}
        assert (body["organisation"], body["etat"], body["tentativesMax"]) == ("CD33", "ACTIF", 2)

        dead = hub.client.get(f"{BASE}/solis-cd33/evenements", params={"statut": "ABANDONNE"}, headers=rgc).json()
        assert dead["total"] == 2
        assert {e["identifiant"] for e in dead["evenements"]} == {first, second}
        assert {e["derniereErreur"] for e in dead["evenements"]} == {"réponse HTTP 500"}
        assert all("donnees" not in e for e in dead["evenements"])  # never the content

        detail = hub.client.get(f"{BASE}/solis-cd33/evenements/{first}", headers=rgc).json()
        assert [(a["numero"], a["resultat"], a["codeHttp"]) for a in detail["historique"]] == [
            (1, "EN_ECHEC", 500),
            (2, "ABANDONNE", 500),
        ]

        replayed = hub.client.post(f"{BASE}/solis-cd33/evenements/{first}/rejouer", headers=rgc)
        assert replayed.status_code == 202, replayed.text
        assert (replayed.json()["statut"], replayed.json()["tentatives"]) == ("EN_ATTENTE", 0)
        runner.run_until_idle()
        assert fake.state.ids() == [first]

        rest = hub.client.post(f"{BASE}/solis-cd33/rejouer", json={"statuts": ["ABANDONNE"]}, headers=rgc)
        assert (rest.status_code, rest.json()) == (202, {"nombre": 1})
        runner.run_until_idle()
        assert sorted(fake.state.ids()) == sorted([first, second])
    final = hub.client.get(f"{BASE}/solis-cd33", headers=rgc).json()
    assert final["compteurs"]["LIVRE"] == 2 and final["derniereLivraison"] is not None

    with hub.services.database.session() as session:
        audited = session.exec(
            select(AuditEvent).where(AuditEvent.operation == "rejouerPlage").order_by(col(AuditEvent.seq))
        ).all()
    assert [(e.target, e.organisation, (e.details or {}).get("nombre")) for e in audited] == [
        ("connecteur:solis-cd33", "CD33", 1)
    ]


def test_pause_and_resume(hub: Hub) -> None:
    rssi = admin_headers(hub, "CD33", RSSI, "RSSI-CD33")
    with editor({}) as fake:
        fake.state.keys.update(add_connector(hub.services.database, hub.services.keys, fake.url))
        paused = hub.client.post(f"{BASE}/solis-cd33/suspendre", headers=rssi)
        assert (paused.status_code, paused.json()["etat"]) == (200, "SUSPENDU")
        (event_id,) = publish(hub.services.database, 1, now=hub.clock.now)
        assert worker(hub).run_until_idle() == 0
        assert hub.client.get(f"{BASE}/solis-cd33", headers=rssi).json()["compteurs"]["EN_ATTENTE"] == 1

        resumed = hub.client.post(f"{BASE}/solis-cd33/reprendre", headers=rssi)
        assert (resumed.status_code, resumed.json()["etat"]) == (200, "ACTIF")
        worker(hub).run_until_idle()
        assert fake.state.ids() == [event_id]


def test_who_sees_which_connector(hub: Hub) -> None:
    keys = hub.services.keys
    add_connector(hub.services.database, keys, "https://solis.example.org/relais")
    add_connector(
        hub.services.database, keys, "https://iodas.example.org/relais", name="iodas-cd93", organisation="CD93"
    )

    def names(headers: dict[str, str]) -> list[str]:
        response = hub.client.get(BASE, headers=headers)
        assert response.status_code == 200, response.text
        return [c["nom"] for c in response.json()["connecteurs"]]

    rgc93 = admin_headers(hub, "CD93", RGC_SUPPLEANT, "RGC-CD93")
    assert names(rgc93) == ["iodas-cd93"]
    assert names(admin_headers(hub, "FT-NAQ", CSSI, "CSSI")) == ["iodas-cd93", "solis-cd33"]
    assert names(admin_headers(hub, "CD33", OPERATEUR, "OPS")) == ["iodas-cd93", "solis-cd33"]

    # Another organisation's connector does not exist for you; so neither does its pause.
    other = hub.client.get(f"{BASE}/solis-cd33", headers=rgc93)
    assert (other.status_code, other.json()["codeErreur"]) == (404, "CONNECTEUR_INCONNU")
    assert hub.client.post(f"{BASE}/solis-cd33/suspendre", headers=rgc93).status_code == 404
    # An agent without a role is refused; a partner token is not an admin token.
    plain = admin_headers(hub, "CD33", None, "AGENT-CD33")
    refused = hub.client.get(BASE, headers=plain)
    assert (refused.status_code, refused.json()["codeErreur"]) == (403, "ACCES_NON_AUTORISE")
    partner = hub.client.get(BASE, headers={"Authorization": f"Bearer {hub.token()}"})
    assert partner.status_code == 401
    unknown = hub.client.get(f"{BASE}/solis-cd33/evenements/{'0' * 32}", headers=rgc93)
    assert unknown.status_code == 404
    naive = hub.client.get(f"{BASE}/iodas-cd93/evenements", params={"depuis": "2026-11-23T10:00:00"}, headers=rgc93)
    assert naive.status_code == 400 and naive.json()["codeHttp"] == 400
    reversed_period = hub.client.get(
        f"{BASE}/iodas-cd93/evenements",
        params={"depuis": "2026-11-23T10:00:00Z", "jusqua": "2026-11-22T10:00:00Z"},
        headers=rgc93,
    )
    assert (reversed_period.status_code, reversed_period.json()["codeErreur"]) == (400, "PERIODE_INVALIDE")
