"""France Travail's LPE Postman collection, replayed against Relais as a département would.

The requests are FT's (``ft_schemas/lpe_collection_requests.json``, copied from
``France-Travail/si_plateforme``): same methods, paths, query strings, headers and bodies. Only
what a real integrator substitutes is: the agent headers (a habilitated demo agent instead of
FT's support values), FT's recette ``numeroFranceTravail`` (a demo usager's),
``{{jetonUsager}}``, ``{{dateDuJour}}`` / ``{{dateDuJourISO}}`` (the
hub's clock, formatted as the collection's scripts do), the empty
``identifiantConsequenceSanction`` and the example ``identifiantSanction`` (the demo's
consequences), the example ``idDiagnostic`` of "4.2 Supprimer un diagnostic" (the one "4.2 Créer
un diagnostic" just created), and the rendez-vous date (FT's example is in the past). France Travail's
producer feed, which the collection takes for granted, is played through the domain (its
preconisation and its sanction proposals). Each answer must have the status FT documents
(saved responses, cinématiques: 200/201/204, sanctions "200 + code sortie") and, where FT
publishes a class, its shape (``test_ft_contract_strict``'s schemas).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from parcours import orientation as orientation_domain
from parcours import sanctions as sanctions_domain
from parcours.tables import Usager
from tests.support.ft_schemas import validator
from tests.support.hub import Hub
from tests.support.people import GIRONDE
from tests.support.scopes import (
    ACTIVITES_V1_SCOPES,
    ACTIVITES_V2_SCOPES,
    AGENT,
    CONTRAT_ENGAGEMENT_SCOPES,
    DIAGNOSTIC_SCOPES,
    INFOS_SCOPES,
    ORIENTATION_SCOPES,
    RDV_SCOPES,
    RECHERCHE_SCOPES,
    SANCTIONS_SCOPES,
    STATUT_SCOPES,
)

COLLECTION = json.loads((Path(__file__).parent / "ft_schemas" / "lpe_collection_requests.json").read_text("utf-8"))
SCOPES = " ".join(
    (
        RECHERCHE_SCOPES,
        INFOS_SCOPES,
        STATUT_SCOPES,
        ORIENTATION_SCOPES,
        ACTIVITES_V1_SCOPES,
        ACTIVITES_V2_SCOPES,
        RDV_SCOPES,
        CONTRAT_ENGAGEMENT_SCOPES,
        DIAGNOSTIC_SCOPES,
        SANCTIONS_SCOPES,
    )
)


@dataclass
class Step:
    """What FT documents for one request of the collection, and what it acts on."""

    status: int
    schema: str | None = None
    # The consequence (a key of ``Replay.consequences``) the request is about.
    consequence: str | None = None
    # The codeSortie FT's diagram gives for this event (a write always answers 200).
    code_sortie: str | None = None
    before: Callable[[Replay], None] | None = None
    check: Callable[[Any], None] | None = None
    # A check that needs what earlier answers gave (ids Relais attributed).
    then: Callable[[Replay, Any], None] | None = None


@dataclass
class Replay:
    hub: Hub
    jeton: str = ""
    consequences: dict[str, str] = field(default_factory=dict)
    # The idDiagnostic "4.2 Créer un diagnostic" was answered.
    diagnostic: str = ""

    def proposer(self, name: str, type_: str) -> None:
        with self.hub.services.database.transaction() as session:
            usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
            payload = {
                "typeConsequenceSanction": type_,
                "natureManquement": "N65",
                "rangManquement": "R1",
                "modaliteProposee": "M",
                "montantPropose": 100,
                "dureeProposee": 1,
            }
            if type_ == "LEVEE_SUSP_RSA":
                payload = {"typeConsequenceSanction": type_}
            c = sanctions_domain.proposer_consequence(session, usager, payload, now=self.hub.clock.now)
            self.consequences[name] = c.id


def preconisation_ft(replay: Replay) -> None:
    """France Travail's preconisation for the usager (its producer feed)."""
    with replay.hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
        orientation_domain.preconiser(
            session,
            usager,
            {"parcours": "PED", "organisme": "FT", "origine": "INSCRIPTION_AUTO_CAF"},
            now=replay.hub.clock.now,
            agent="FT",
        )


def reorientation(replay: Replay) -> None:
    """A new orientation decided for the usager: it returns the signed contract to "à signer"
    (the state FT's "Refuser un contrat d'engagement existant" acts on)."""
    with replay.hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == GIRONDE.numero)).one()
        orientation_domain.orienter(
            session, usager, {"parcours": "PSO", "organisme": "CD"}, now=replay.hub.clock.now, agent="AGT-0042"
        )


def propositions_ft(replay: Replay) -> None:
    """France Travail's sanction proposals, one per case of the collection's section 6."""
    for name, type_ in (
        ("suspension", "SUSP_RSA"),
        ("suspension_refus_saisie", "SUSP_RSA"),
        ("levee", "LEVEE_SUSP_RSA"),
        ("levee_refus", "LEVEE_SUSP_RSA"),
        ("suppression", "SUPP_RSA"),
    ):
        replay.proposer(name, type_)


def activity_codes(expected: set[str]) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        items = body["activites"] if isinstance(body, dict) else body
        assert {item["codeActivite"] for item in items} == expected

    return check


def orientation_is(parcours: str, organisme: str, organisme_decision: str) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        assert (body["parcours"], body["organisme"], body["organisme_decision"]) == (
            parcours,
            organisme,
            organisme_decision,
        )

    return check


def diagnostic_created(replay: Replay, body: Any) -> None:
    assert (body["codeRome"], body["codeAppellation"], body["codeTypologie"]) == ("K1304", "10857", "MR")
    replay.diagnostic = body["idDiagnostic"]


def diagnostic_gone(replay: Replay, body: Any) -> None:
    assert replay.diagnostic not in {d["idDiagnostic"] for d in body["diagnostics"]}, body


# One entry per request of the collection, in its order (which is state-consistent once the
# refusal of FT's preconisation comes before the calcul that makes a new one).
PLAN: list[Step] = [
    Step(200, "resultat_recherche"),  # 1.1 jeton usager
    Step(200, "informations_administratives"),  # 1.2 info usager
    Step(200),  # 1.2 statut usager
    Step(200, "activites_v2", before=preconisation_ft, check=activity_codes({"ACT382"})),  # 2.1.1
    Step(200, "orientations"),  # 2.1.2 the preconisation FT made
    # 2.2.1 "valider la préco FT", then "refuser la préco FT" on a new preconisation (one
    # decision per preconisation: FT's feed makes another one in between).
    Step(201, "orientation", check=orientation_is("PED", "FT", "CD")),
    Step(201, "orientation", before=preconisation_ft, check=orientation_is("PSO", "FT", "CD")),
    Step(200, "orientations"),  # 2.2.2
    Step(200, "orientation"),  # 2.3.1 calculOrientation, FT's full criteria
    Step(201, "orientation"),  # 2.3.2 accept it
    Step(201, "orientation", check=orientation_is("PSO", "CD", "CD")),  # 2.3.4 forced orientation
    Step(200, "activites_v2", check=activity_codes({"ACT380"})),  # 3.1
    Step(202),  # 3.2 prendre un rdv: the collection's test expects 202
    Step(200),  # 3.2 consulter rdv
    Step(200, "orientations"),  # 4.1
    # 4.2 diagnostics: FT's scripts expect 200 on each (its OpenAPI is not public: no schema).
    Step(200),  # Récupérer les diagnostics
    Step(200, then=diagnostic_created),  # Créer un diagnostic, FT's body
    Step(200),  # Supprimer un diagnostic: the one just created (FT sends a body: ignored)
    Step(200, then=diagnostic_gone),  # "Référentiel diagnostic": it is gone
    Step(204),  # contrat: lecture, "204 Pas de contrat d'engagement"
    Step(200),  # contrat: POST signer creates it (the collection's script goes on only on a 200)
    Step(200, before=reorientation),  # PATCH refuser, once a reorientation put it back to sign
    Step(200),  # PATCH signer
    Step(200, "activites_v2", before=propositions_ft, check=activity_codes({"ACT366", "ACT369", "ACT370"})),  # 6.1
    Step(200, "activites_v1", check=activity_codes({"ACT366"})),  # 6.2
    Step(200, consequence="suspension"),  # 6.3 detailManquement
    Step(200, "resultat_sanction", "suspension", "C001"),  # 6.5 SAISIE_SANCTION
    Step(200, "resultat_sanction", "suspension_refus_saisie", "C001"),  # 6.6 REFUS_SAISIE_SANCTION
    Step(200, consequence="suspension"),  # 6.7 detailManquement
    # 6.8 VALID_SANCTION without the four values FT's diagram marks "Obligatoire".
    Step(200, "resultat_sanction", "suspension", "C004"),
    Step(200, "resultat_sanction", "suspension", "C001"),  # 6.9 REFUS_SANCTION
    Step(200, consequence="levee"),  # 6.10 detailManquement
    Step(200, "resultat_sanction", "levee", "C001"),  # 6.11 VALID_LEVEE_SUSP
    Step(200, "resultat_sanction", "levee_refus", "C001"),  # 6.12 REFUS_LEVEE_SUSP
    Step(200, "resultat_sanction", "suppression", "C004"),  # 6.14 VALID_SANCTION, values missing
    Step(200, "resultat_sanction", "suppression", "C001"),  # 6.15 REFUS_SANCTION
    Step(200, "resultat_sanction", code_sortie="C001"),  # 6.16 decisionSanctionRSAPartenaire
    Step(200, consequence="decision_partenaire"),  # 6.17 detailManquement
]


def test_plan_covers_the_collection() -> None:
    assert len(PLAN) == len(COLLECTION["requests"])


def substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in variables.items():
            value = value.replace("{{" + name + "}}", replacement)
        return value
    if isinstance(value, dict):
        return {key: substitute(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    return value


def test_collection_replay(hub: Hub) -> None:
    replay = Replay(hub)
    access = hub.token("cd33", SCOPES)
    now = hub.clock.now
    variables = {
        "dateDuJour": hub.clock.today().isoformat(),
        # The collection's script: new Date().toISOString().
        "dateDuJourISO": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
    }
    for index, (request, step) in enumerate(zip(COLLECTION["requests"], PLAN, strict=True)):
        where = f"{index}: {request['folder']} / {request['name']}"
        if step.before is not None:
            step.before(replay)
        variables["jetonUsager"] = replay.jeton
        headers = {key: value for key, value in substitute(request["headers"], variables).items()}
        headers.update(AGENT)  # a habilitated demo agent, not FT's support values
        headers["Authorization"] = f"Bearer {access}"
        url = request["url"]
        body = substitute(request["body"], variables)
        if step.consequence is not None and "identifiantSanction=" in url:
            url = url.split("identifiantSanction=")[0] + f"identifiantSanction={replay.consequences[step.consequence]}"
        if "/supprime" in url:
            url = url.replace(url.split("/")[-2], replay.diagnostic)
        if isinstance(body, dict) and "identifiantConsequenceSanction" in body:
            assert step.consequence is not None, where
            body["identifiantConsequenceSanction"] = replay.consequences[step.consequence]
        if isinstance(body, dict) and "numeroFranceTravail" in body:
            body["numeroFranceTravail"] = GIRONDE.numero  # FT's recette usager is not in the demo
        if isinstance(body, dict) and "modaliteContact" in body:
            body["date"] = (now + timedelta(days=7)).strftime("%Y-%m-%dT10:30:00.000Z")
        content = None if body is None else json.dumps(body).encode()
        if content is not None:
            headers.setdefault("Content-Type", "application/json")
        response = hub.client.request(request["method"], url, headers=headers, content=content)
        assert response.status_code == step.status, (where, response.text)
        payload: Any = response.json() if response.content else None
        if step.schema is not None:
            errors = [e.message for e in validator(step.schema).iter_errors(payload)]
            assert errors == [], (where, errors)
        if step.code_sortie is not None:
            assert payload["codeSortie"] == step.code_sortie, (where, payload)
        if step.check is not None:
            step.check(payload)
        if step.then is not None:
            step.then(replay, payload)
        if index == 0:
            assert payload["codeRetour"] == "S001", payload
            replay.jeton = payload["jetonUsager"]
        if "decisionSanctionRSAPartenaire" in url:
            replay.consequences["decision_partenaire"] = payload["identifiantConsequenceSanction"]
