"""The test dataset: organisations, clients, usagers, subscriptions, agents and their grants,
as import records (the importer's JSON lines), and how it is imported.

The hub fixtures import it once per run into a template database (``tests.support.hub``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from habilitations.models import Agent
from habilitations.policy import subscribable
from relais.core.db import Database
from relais.core.keys import KeySet
from relais.importer import import_file
from tests.support.hashing import cheap_hashing
from tests.support.people import PEOPLE, Person
from tests.support.scopes import (
    ALIMENTATION_SCOPES,
    ALL_SCOPES,
    PARCOURS_SCOPES,
    RECHERCHE_SCOPES,
    SECRET,
)


def _usager_record(person: Person, index: int) -> dict[str, Any]:
    insee = {"33": "33063", "93": "93066", "2A": "2A004"}[person.departement]
    postcode = {"33": "33000", "93": "93200", "2A": "20000"}[person.departement]
    data: dict[str, Any] = {
        "numeroFranceTravail": person.numero,
        "etatCivil": {
            "civilite": "M." if person.nir13[0] == "1" else "Mme",
            "nom": f"NOM{index}",
            "prenom": f"PRENOM{index}",
            "nomCorrespondance": f"NOM{index}",
            "prenomCorrespondance": f"PRENOM{index}",
            "dateNaissance": person.naissance,
            "nir": person.nir,
        },
        "adresses": [
            {
                "codeInseeCommune": insee,
                "codePostal": postcode,
                "complementAdresse": None,
                "complementDestinataire": None,
                "complementDistribution": None,
                "libelleCommune": "COMMUNE",
                "libellePays": "FRANCE",
                "numeroTypeLibelleVoie": f"{index} RUE DES TESTS",
                "indicateurResidentQPV": "NQ",
            }
        ],
        "emails": [{"adresseEmail": f"usager{index}@example.org"}],
        "telephones": [{"numeroTelephone": "0600000000"}],
        "topIdentiteCertifiee": person.certifie,
        "organisations": list(person.organisations),
    }
    if person.contrat:
        data["contrat"] = {
            "m_statut": "Inscrit",
            "m_date_effet_statut": "2025-06-28",
            "m_duree_inscription_12": 9,
            "m_duree_inscription_24": 16,
            "m_duree_inscription_36": 28,
            "m_motif_inscription_code": "11",
            "m_motif_inscription_lib": "LICENCIEMENT ECONOMIQUE",
            "m_categ_inscription_code": "1",
            "m_categ_inscription_lib": "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PLEIN TPS",
            "m_situation_reg_emp_code": "ADR",
            "m_situation_reg_emp_lib": "AIDE DIFFERENTIELLE AU RECLASSEMENT",
            "m_motif_cloture_code": None,
            "m_motif_cloture_lib": None,
        }
    return {"type": "usager", "data": data}


def dataset() -> list[dict[str, Any]]:
    organisations = [
        {
            "type": "organisation",
            "data": {"code": code, "type": "CD", "libelle": f"Département {dep}", "territoire": [dep]},
        }
        for code, dep in (("CD33", "33"), ("CD93", "93"), ("CD2A", "2A"))
    ] + [
        {
            "type": "organisation",
            "data": {
                "code": "FT-NAQ",
                "type": "FT",
                "libelle": "France Travail Nouvelle-Aquitaine",
                "territoire": ["33"],
            },
        }
    ]
    clients = [
        {
            "type": "client",
            "data": {
                "client_id": "cd33",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": ALL_SCOPES,
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "ft-naq",
                "client_secret": SECRET,
                "organisation": "FT-NAQ",
                "scopes": sorted(set(f"{ALIMENTATION_SCOPES} {PARCOURS_SCOPES} {RECHERCHE_SCOPES}".split())),
                # Feeds usagers of every territory (the tests register CD93 usagers with it).
                "national": True,
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "ft-naq-regional",
                "client_secret": SECRET,
                "organisation": "FT-NAQ",
                "scopes": ALIMENTATION_SCOPES.split(),
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd33-recherche",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": RECHERCHE_SCOPES.split(),
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd93",
                "client_secret": SECRET,
                "organisation": "CD93",
                "scopes": ALL_SCOPES,
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd33-off",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": ALL_SCOPES,
                "enabled": False,
            },
        },
        {
            "type": "client",
            "data": {
                "client_id": "cd33-slow",
                "client_secret": SECRET,
                "organisation": "CD33",
                "scopes": ALL_SCOPES,
                "rate_limit_per_second": 2,
            },
        },
    ]
    usagers = [_usager_record(person, index) for index, person in enumerate(PEOPLE, start=1)]
    return organisations + clients + usagers + habilitations_records(clients)


def keep_dataset_agents_active(database: Database, now: datetime) -> None:
    """Tests move the clock by months (contract suspensions, due dates): the dataset's agents
    stay clear of the two-month inactivity rule, which tests/habilitations exercise with
    agents of their own."""
    with database.transaction() as session:
        for agent in session.exec(select(Agent)).all():
            agent.derniere_activite = now + timedelta(days=365 * 30)
            session.add(agent)


# The agents the tests name in ``pa-identifiant-agent``: (organisation, identifiant, client of
# a technical identity or None). Each is habilitated for everything its organisation's
# clients may do, within subscriptions covering the same: enforcement is on in every test.
HABILITATED_AGENTS = (
    ("CD33", "AGT-0042", None),
    ("CD33", "AGT-7", None),
    ("CD33", "BATCH", "cd33"),
    ("CD93", "AGT-0042", None),
    ("FT-NAQ", "AGT-0042", None),
)


def habilitations_records(clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    held: dict[str, set[str]] = {}
    for client in clients:
        held.setdefault(client["data"]["organisation"], set()).update(client["data"]["scopes"])
    records: list[dict[str, Any]] = []
    for organisation, scopes in held.items():
        for api, covered in subscribable(scopes).items():
            records.append(
                {"type": "subscription", "data": {"organisation": organisation, "api": api, "scopes": covered}}
            )
    for organisation, identifiant, client_id in HABILITATED_AGENTS:
        technical = {"type": "technique", "client_id": client_id} if client_id else {"statut_emploi": "contractuel"}
        records.append(
            {
                "type": "agent",
                "data": {"organisation": organisation, "identifiant": identifiant, "nom": f"Agent {identifiant}"}
                | technical,
            }
        )
        for subscription in [r["data"] for r in records if r["type"] == "subscription"]:
            if subscription["organisation"] == organisation:
                records.append(
                    {
                        "type": "habilitation",
                        "data": {
                            "organisation": organisation,
                            "agent": identifiant,
                            "api": subscription["api"],
                            "scopes": subscription["scopes"],
                            "finalite": "Accompagnement des usagers (jeu de tests)",
                        }
                        | ({"client_id": client_id} if client_id else {}),
                    }
                )
    return records


def import_dataset(database_url: str, keys: KeySet, directory: Path) -> None:
    """Import the dataset into the database at ``database_url``, as ``relais import`` does."""
    path = directory / "dataset.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in dataset()) + "\n")
    database = Database(database_url)
    try:
        with cheap_hashing():
            import_file(database, keys, path)
    finally:
        database.dispose()
