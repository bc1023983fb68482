"""The loi-pour-le-plein-emploi journey of an RSA beneficiary, replayed through the HTTP API.

France Travail's producer feed publishes an orientation preconisation; the département finds
the decision to take in its activity list (ACT382), gets a jeton, reads the preconisation,
decides; the accompanying structure finds ACT380, books the first accompaniment appointment;
the contrat d'engagement is signed; a manquement leads to a suspension proposal (ACT366) that
the département instructs, then validates. After each step the state the next step reads is
asserted, as a client would see it, and every call leaves its audit event.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlmodel import col, func, select

from audit.models import AuditEvent
from tests.support.ft_schemas import assert_ft_operation, assert_ft_shape
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import (
    ACTIVITES_V1_SCOPES,
    ACTIVITES_V2_SCOPES,
    ALIMENTATION_SCOPES,
    CONTRAT_ENGAGEMENT_SCOPES,
    DIAGNOSTIC_SCOPES,
    INFOS_SCOPES,
    ORIENTATION_SCOPES,
    RDV_SCOPES,
    RECHERCHE,
    RECHERCHE_SCOPES,
    SANCTIONS_SCOPES,
)

ALIMENTATION = "/relais/alimentation/v1"
ACTIVITES_V1 = "/partenaire/activites-operationnelles/v1/activites/chercher"
ACTIVITES_V2 = "/partenaire/activites-operationnelles/v2/activites/chercher"
ORIENTATION = "/partenaire/orientationusager/v1"
RDV = "/partenaire/rendez-vous-partenaire/v1"
CONTRAT = "/partenaire/contrat-engagement/v1"
SANCTIONS = "/partenaire/gestion-sanctions-rsa/v1"
CD33_SCOPES = " ".join(
    (
        RECHERCHE_SCOPES,
        INFOS_SCOPES,
        ORIENTATION_SCOPES,
        ACTIVITES_V1_SCOPES,
        ACTIVITES_V2_SCOPES,
        RDV_SCOPES,
        CONTRAT_ENGAGEMENT_SCOPES,
        SANCTIONS_SCOPES,
        DIAGNOSTIC_SCOPES,
    )
)
PRECONISATION = {
    "parcours": "PSO",
    "organisme": "CD",
    "structure": {"code_aurore": "NAQ0405", "code_safir": "33014", "libelle_structure": "Département de la Gironde"},
    "origine": "INSCRIPTION_VOLONTAIRE",
    "criteres_orientation": {"brsa": True, "situation_professionnelle": "JAMAIS"},
}


def acceptation(hub: Hub) -> dict[str, Any]:
    """A decisionOrientation body accepting France Travail's preconisation today."""
    return {
        "etat_decision": "ACCEPTEE",
        "date_decision": hub.clock.today().isoformat(),
        "organisme_decision": "CD",
        "agent_decision": "Claire Martin",
    }


def activities(hub: Hub, token: str, code: str) -> list[dict[str, Any]]:
    response = hub.client.get(ACTIVITES_V2, params={"codeActivite": code}, headers=hub.headers(token))
    if response.status_code == 204:
        return []
    # Every answer as France Travail's typed client parses it (its demo client's classes).
    return list(assert_ft_shape("activites_v2", response)["activites"])


def for_usager(items: list[dict[str, Any]], numero: str) -> list[dict[str, Any]]:
    return [item for item in items if item["usager"]["identifiant"] == numero]


def jeton(hub: Hub, token: str, numero: str) -> str:
    response = hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail", json={"numeroFranceTravail": numero}, headers=hub.headers(token)
    )
    assert response.json()["codeRetour"] == "S001", response.text
    return str(assert_ft_shape("resultat_recherche", response)["jetonUsager"])


def audit_count(hub: Hub) -> int:
    with hub.services.database.session() as session:
        return int(session.exec(select(func.count(col(AuditEvent.id)))).one())


def publish_preconisation(hub: Hub, numero: str) -> dict[str, Any]:
    producer = hub.token("ft-naq", ALIMENTATION_SCOPES)
    response = hub.client.post(
        f"{ALIMENTATION}/usagers/{numero}/orientations", json=PRECONISATION, headers=hub.headers(producer)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_the_whole_journey_runs_through_the_api(hub: Hub) -> None:
    numero = GIRONDE.numero
    publish_preconisation(hub, numero)
    cd33 = hub.token("cd33", CD33_SCOPES)

    # 1. The département finds the orientation decision to take in its activity list.
    act382 = for_usager(activities(hub, cd33, "ACT382"), numero)
    assert len(act382) == 1
    assert act382[0]["usager"]["typeIdentifiant"] == "numeroFranceTravail"
    v1 = hub.client.get(ACTIVITES_V1, params={"codeActivite": "ACT382"}, headers=hub.headers(cd33))
    assert isinstance(assert_ft_shape("activites_v1", v1), list)

    # 2. Jeton, the usager's file, then France Travail's preconisation.
    headers = hub.headers(cd33, **{"ft-jeton-usager": jeton(hub, cd33, numero)})
    infos = hub.client.get("/partenaire/informations-administratives/v1/usager", headers=headers)
    assert assert_ft_shape("informations_administratives", infos)["etatCivil"]["nom"]
    lecture = hub.client.get(f"{ORIENTATION}/lectureOrientation", headers=headers)
    (pending,) = [o for o in assert_ft_shape("orientations", lecture) if o["etat"] == "EN_ATTENTE"]
    assert (pending["statut"], pending["parcours"], pending["organisme"]) == ("PRECONISE", "PSO", "CD")

    # 3. Decide: accepted. ACT382 disappears, ACT380 appears for the accompanying structure.
    decision = hub.client.post(
        f"{ORIENTATION}/decisionOrientation",
        json=acceptation(hub),
        headers=headers,
    )
    assert_ft_shape("orientation", decision, 201)
    lecture = hub.client.get(f"{ORIENTATION}/lectureOrientation", params={"etatOrientation": "OUVERT"}, headers=headers)
    (ouverte,) = assert_ft_shape("orientations", lecture)
    assert (ouverte["statut"], ouverte["decision"]["etat_decision"]) == ("DECIDE", "ACCEPTEE")
    assert for_usager(activities(hub, cd33, "ACT382"), numero) == []
    (act380,) = for_usager(activities(hub, cd33, "ACT380"), numero)
    motif = {a["nom"]: a["valeur"] for a in act380["attributsSpecifiques"]}["motif"]
    assert motif == "ACC"

    # A second decision on the same orientation is refused, not applied twice.
    again = hub.client.post(
        f"{ORIENTATION}/decisionOrientation",
        json=acceptation(hub),
        headers=headers,
    )
    assert 400 <= again.status_code < 500 and again.json()["codeHttp"] == again.status_code

    # 4. The first accompaniment appointment, with the motif ACT380 carried: ACT380 closes.
    rdv = hub.client.post(
        f"{RDV}/rendez-vous",
        json={
            "date": "2030-01-15T10:30:00.000+01:00",
            "duree": 45,
            "motif": motif,
            "statut": "PRIS",
            "modaliteContact": "PHYSIQUE",
            "typeReception": "IND",
            "initiateur": "PARTENAIRE",
            "organisme": {"code": "CD", "emailContact": "insertion@example.org"},
            "libelleAdresse": "Maison départementale des solidarités",
            "adresse": "1 esplanade Charles de Gaulle 33000 Bordeaux",
        },
        headers=headers,
    )
    rdv_id = assert_ft_operation("creerRendezVous", rdv, 202)["id"]
    assert for_usager(activities(hub, cd33, "ACT380"), numero) == []
    listed = hub.client.get(f"{RDV}/rendez-vous-usager", headers=headers)
    assert rdv_id in [item["id"] for item in assert_ft_operation("consulterRendezVousUsager", listed)]

    # 5. The contrat d'engagement is signed at the first interview.
    signe = hub.client.post(f"{CONTRAT}/signer", json={"dateSignature": hub.clock.now.isoformat()}, headers=headers)
    assert assert_ft_operation("signerPremierContratEngagement", signe)["etat"] == "SIGNE"
    contrat = hub.client.get(f"{CONTRAT}/lecture", headers=headers)
    assert assert_ft_operation("lireContratEngagement", contrat)["etat"] == "SIGNE"

    #    And the métier recherché is noted in the diagnostic (FT's collection, step 4.2).
    diagnostics = "/partenaire/diagnosticargumente/v4/diagnostics"
    metier = {"codeAppellation": "10857", "codeRome": "K1304", "codeSousTypologie": None, "codeTypologie": "MR"}
    cree = hub.client.post(diagnostics, json=metier, headers=headers)
    id_diagnostic = assert_ft_operation("creerDiagnostic", cree)["idDiagnostic"]
    listed_diagnostics = assert_ft_operation("recupererDiagnostics", hub.client.get(diagnostics, headers=headers))
    assert [d["idDiagnostic"] for d in listed_diagnostics["diagnostics"]] == [id_diagnostic]

    # 6. A manquement: France Travail proposes a suspension, the département instructs it (ACT366
    #    -> ACT367), then validates it with its own values.
    producer = hub.token("ft-naq", ALIMENTATION_SCOPES)
    manquement = hub.client.post(
        f"{ALIMENTATION}/usagers/{numero}/manquements",
        json={
            "natureManquement": "N65",
            "rangManquement": "R1",
            "consequences": [
                {
                    "identifiantConsequenceSanction": "FT-JOURNEY-1",
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
    (act366,) = for_usager(activities(hub, cd33, "ACT366"), numero)
    identifiant = {a["nom"]: a["valeur"] for a in act366["attributsSpecifiques"]}["identifiantConsequenceSanction"]
    assert identifiant == "FT-JOURNEY-1"

    detail = hub.client.get(
        f"{SANCTIONS}/detailManquement", params={"identifiantSanction": identifiant}, headers=headers
    )
    detail_body = assert_ft_operation("lireDetailSanctionRsa", detail)
    assert (detail_body["typeConsequenceSanction"], detail_body["dureeProposee"]) == ("SUSP_RSA", 2)

    today = hub.clock.today().isoformat()
    saisie = hub.client.post(
        f"{SANCTIONS}/evenementSanctionRSA",
        json={
            "identifiantConsequenceSanction": identifiant,
            "evenement": {"typeEvenement": "SAISIE_SANCTION", "dateEvenement": today},
        },
        headers=headers,
    )
    assert assert_ft_shape("resultat_sanction", saisie)["codeSortie"] == "C001"
    assert for_usager(activities(hub, cd33, "ACT366"), numero) == []
    assert len(for_usager(activities(hub, cd33, "ACT367"), numero)) == 1

    # Validating needs the validated values: without them nothing changes.
    incomplete = hub.client.post(
        f"{SANCTIONS}/evenementSanctionRSA",
        json={
            "identifiantConsequenceSanction": identifiant,
            "evenement": {"typeEvenement": "VALID_SANCTION", "dateEvenement": today},
        },
        headers=headers,
    )
    # FT's diagram: "200 - Demande traitée + Code sortie à traduire pour action".
    assert assert_ft_shape("resultat_sanction", incomplete)["codeSortie"] == "C004"
    assert len(for_usager(activities(hub, cd33, "ACT367"), numero)) == 1

    valide = hub.client.post(
        f"{SANCTIONS}/evenementSanctionRSA",
        json={
            "identifiantConsequenceSanction": identifiant,
            "evenement": {"typeEvenement": "VALID_SANCTION", "dateEvenement": today},
            "typeConsequenceSanctionValide": "SUSP_RSA",
            "modaliteDecisionValidee": "P",
            "montantValide": 40,
            "dureeValidee": 1,
        },
        headers=headers,
    )
    assert assert_ft_shape("resultat_sanction", valide)["codeSortie"] == "C001"
    assert for_usager(activities(hub, cd33, "ACT367"), numero) == []

    # 7. A re-orientation returns the signed contract to « à signer ».
    forced = hub.client.post(
        f"{ORIENTATION}/orientation",
        json={"origine": "INSCRIPTION_CONSEILLER_CD", "parcours": "PED", "organisme": "CD"},
        headers=headers,
    )
    assert_ft_shape("orientation", forced, 201)
    relu = hub.client.get(f"{CONTRAT}/lecture", headers=headers)
    assert assert_ft_operation("lireContratEngagement", relu)["etat"] == "A_SIGNER"
    lecture = assert_ft_shape("orientations", hub.client.get(f"{ORIENTATION}/lectureOrientation", headers=headers))
    assert sorted(o["etat"] for o in lecture) == ["CLOTURE", "OUVERT"]


def test_every_step_of_the_journey_is_audited_with_the_usager(hub: Hub) -> None:
    before = audit_count(hub)
    publish_preconisation(hub, GIRONDE.numero)
    cd33 = hub.token("cd33", CD33_SCOPES)
    headers = hub.headers(cd33, **{"ft-jeton-usager": jeton(hub, cd33, GIRONDE.numero)})
    hub.client.get(f"{ORIENTATION}/lectureOrientation", headers=headers)
    # Token (producer), feed call, token (cd33), recherche, lecture: five calls, five events.
    assert audit_count(hub) == before + 5
    with hub.services.database.session() as session:
        lecture = session.exec(
            select(AuditEvent).where(AuditEvent.operation == "lectureOrientation").order_by(col(AuditEvent.seq).desc())
        ).first()
    assert lecture is not None
    assert (lecture.decision, lecture.http_status, lecture.organisation) == ("allowed", 200, "CD33")
    assert lecture.usager_id is not None and lecture.usager_nir_index is not None


def test_two_agents_deciding_at_once_make_one_decision(hub: Hub) -> None:
    """Real concurrent HTTP calls: one decision wins, the other gets a conflict, no double transition."""
    publish_preconisation(hub, GIRONDE.numero)
    cd33 = hub.token("cd33", CD33_SCOPES)
    headers = hub.headers(cd33, **{"ft-jeton-usager": jeton(hub, cd33, GIRONDE.numero)})
    body = acceptation(hub)
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def decide() -> None:
        barrier.wait()
        statuses.append(hub.client.post(f"{ORIENTATION}/decisionOrientation", json=body, headers=headers).status_code)

    threads = [threading.Thread(target=decide) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [201, 409]
    lecture = hub.client.get(f"{ORIENTATION}/lectureOrientation", headers=headers).json()
    assert [o["etat"] for o in lecture].count("OUVERT") == 1
    assert len(for_usager(activities(hub, cd33, "ACT380"), GIRONDE.numero)) == 1


@pytest.mark.parametrize("scope", [ORIENTATION_SCOPES, RDV_SCOPES])
def test_a_departement_cannot_feed_the_producer_side(hub: Hub, scope: str) -> None:
    """The producer feed is behind its own scopes: a département's client cannot ask for them."""
    response = hub.client.post(
        "/connexion/oauth2/access_token?realm=/agent",
        data={
            "grant_type": "client_credentials",
            "client_id": "cd33",
            "client_secret": "s3cret-for-tests-only-0123456789",
            "scope": f"{scope} {ALIMENTATION_SCOPES}",
        },
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_text_no_database_stores_is_a_400_naming_the_field(hub: Hub) -> None:
    """A NUL (PostgreSQL refuses it) or a lone surrogate in any JSON body: 400, nothing written."""
    publish_preconisation(hub, GIRONDE.numero)
    cd33 = hub.token("cd33", CD33_SCOPES)
    headers = hub.headers(cd33, **{"ft-jeton-usager": jeton(hub, cd33, GIRONDE.numero)})
    for agent in ("Claire\u0000Martin", "Claire\ud800Martin"):
        response = hub.client.post(
            f"{ORIENTATION}/decisionOrientation",
            content=json.dumps({**acceptation(hub), "agent_decision": agent}),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json() == {
            "codeHttp": 400,
            "codeErreur": "REQUETE_INVALIDE",
            "message": "Requête invalide : champ agent_decision invalide : caractère non autorisé",
        }
    pending = hub.client.get(f"{ORIENTATION}/lectureOrientation", headers=headers).json()
    assert [o["etat"] for o in pending] == ["EN_ATTENTE"]
