"""The parcours journey, through the HTTP API, produces the expected events at the fake editor."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import col, select

from adapters.outbound.webhook import WebhookSender
from adapters.outbound.worker import Worker
from audit.journal import JournalRecorder
from relais.core.outbox import OutboxMessage
from tests.adapters.outbound_support import add_connector, editor
from tests.parcours.test_parcours_journey import (
    ALIMENTATION,
    CD33_SCOPES,
    CONTRAT,
    ORIENTATION,
    RDV,
    SANCTIONS,
    acceptation,
    jeton,
    publish_preconisation,
)
from tests.support.hub import Hub
from tests.support.hub import hub as hub
from tests.support.hub import hub_app as hub_app
from tests.support.people import GIRONDE
from tests.support.scopes import ALIMENTATION_SCOPES

RDV_BODY = {
    "date": "2030-01-15T10:30:00.000+01:00",
    "duree": 45,
    "motif": "ACC",
    "statut": "PRIS",
    "modaliteContact": "PHYSIQUE",
    "typeReception": "IND",
    "initiateur": "PARTENAIRE",
    "organisme": {"code": "CD", "emailContact": "insertion@example.org"},
}


def run_journey(hub: Hub) -> None:
    numero = GIRONDE.numero
    publish_preconisation(hub, numero)
    cd33 = hub.token("cd33", CD33_SCOPES)
    headers = hub.headers(cd33, **{"ft-jeton-usager": jeton(hub, cd33, numero)})
    ok = hub.client.post(f"{ORIENTATION}/decisionOrientation", json=acceptation(hub), headers=headers)
    assert ok.status_code == 201, ok.text
    # Refused: decided already. A refused call publishes nothing.
    again = hub.client.post(f"{ORIENTATION}/decisionOrientation", json=acceptation(hub), headers=headers)
    assert again.status_code == 409
    assert hub.client.post(f"{RDV}/rendez-vous", json=RDV_BODY, headers=headers).status_code == 202
    signe = hub.client.post(f"{CONTRAT}/signer", json={"dateSignature": hub.clock.now.isoformat()}, headers=headers)
    assert signe.status_code == 200, signe.text
    producer = hub.token("ft-naq", ALIMENTATION_SCOPES)
    manquement = hub.client.post(
        f"{ALIMENTATION}/usagers/{numero}/manquements",
        json={
            "natureManquement": "N65",
            "rangManquement": "R1",
            "consequences": [
                {
                    "identifiantConsequenceSanction": "FT-EVT-1",
                    "typeConsequenceSanction": "SUSP_RSA",
                    "modaliteProposee": "P",
                    "montantPropose": 50,
                    "dureeProposee": 2,
                }
            ],
        },
        headers=hub.headers(producer),
    )
    assert manquement.status_code in (200, 201), manquement.text
    today = hub.clock.today().isoformat()
    for evenement, extra in (
        ("SAISIE_SANCTION", {}),
        (
            "VALID_SANCTION",
            {
                "typeConsequenceSanctionValide": "SUSP_RSA",
                "modaliteDecisionValidee": "P",
                "montantValide": 40,
                "dureeValidee": 1,
            },
        ),
    ):
        response = hub.client.post(
            f"{SANCTIONS}/evenementSanctionRSA",
            json={
                "identifiantConsequenceSanction": "FT-EVT-1",
                "evenement": {"typeEvenement": evenement, "dateEvenement": today},
                **extra,
            },
            headers=headers,
        )
        assert response.status_code == 200, response.text


def test_the_journey_reaches_the_departement_s_editor_once_each(hub: Hub) -> None:
    with editor({}) as fake:
        fake.state.keys.update(add_connector(hub.services.database, hub.services.keys, fake.url))
        # Another département's connector hears nothing of a Gironde usager.
        add_connector(hub.services.database, hub.services.keys, fake.url, name="iodas-cd93", organisation="CD93")
        run_journey(hub)
        worker = Worker(
            hub.services.database,
            hub.services.keys,
            hub.services.settings,
            WebhookSender(),
            audit=JournalRecorder(),
            clock=hub.clock,
        )
        worker.run_until_idle()

        received = fake.state.received
    assert [event["type"] for event in received] == [
        "orientation.a_decider",
        "orientation.decidee",
        "rendez_vous.pris",
        "contrat_engagement.signe",
        "sanction.a_instruire",
        "sanction.etat_modifie",
        "sanction.decidee",
    ]
    assert {event["organisation"] for event in received} == {"CD33"}
    assert all(event["donnees"]["numeroFranceTravail"] == GIRONDE.numero for event in received)
    decided = received[1]["donnees"]["orientation"]
    assert (decided["etat"], decided["etatDecision"], decided["parcours"]) == ("OUVERT", "ACCEPTEE", "PSO")
    assert received[2]["donnees"]["rendezVous"]["motif"] == "ACC"
    assert received[-1]["donnees"]["consequence"]["etat"] == "VALIDEE"
    # Identifiers, codes, states and dates only: no NIR, no name, no birth date, no e-mail.
    text = json.dumps(received, ensure_ascii=False)
    for personal in (GIRONDE.nir, GIRONDE.nir13, GIRONDE.naissance, "NOM1", "PRENOM1", "usager1@example.org"):
        assert personal not in text
    with hub.services.database.session() as session:
        recipients = {m.recipient for m in session.exec(select(OutboxMessage))}
    assert recipients == {"connecteur:solis-cd33"}


def test_no_connector_no_message(hub: Hub) -> None:
    run_journey(hub)
    with hub.services.database.session() as session:
        assert list(session.exec(select(OutboxMessage))) == []


def test_rendez_vous_changes_are_told_once_and_only_when_something_changed(hub: Hub) -> None:
    add_connector(hub.services.database, hub.services.keys, "https://solis.example.org/relais")
    cd33 = hub.token("cd33", CD33_SCOPES)
    headers = hub.headers(cd33, **{"ft-jeton-usager": jeton(hub, cd33, GIRONDE.numero)})
    body = {**RDV_BODY, "motif": "AUT"}
    created = hub.client.post(f"{RDV}/rendez-vous", json=body, headers=headers)
    assert created.status_code == 202, created.text
    rdv_id = created.json()["id"]
    hub.clock.now += timedelta(seconds=1)  # the outbox keeps the order of the changes by time
    same = hub.client.put(f"{RDV}/rendez-vous", json={**body, "id": rdv_id}, headers=headers)
    assert same.status_code in (200, 202), same.text
    hub.clock.now += timedelta(seconds=1)
    moved = hub.client.put(f"{RDV}/rendez-vous", json={**body, "id": rdv_id, "duree": 60}, headers=headers)
    assert moved.status_code in (200, 202), moved.text
    hub.clock.now += timedelta(seconds=1)
    for _ in range(2):
        assert hub.client.delete(f"{RDV}/rendez-vous/{rdv_id}", headers=headers).status_code == 204

    with hub.services.database.session() as session:
        told = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
    assert [m.topic for m in told] == ["rendez_vous.pris", "rendez_vous.modifie", "rendez_vous.annule"]
    assert [m.payload["donnees"]["rendezVous"]["duree"] for m in told] == [45, 60, 60]
