"""Upgrading a database that already has clients: they keep working through a transitional
identity until their organisation habilitates its first person."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, column, insert, table
from sqlmodel import Session, select

from audit.models import AuditEvent
from habilitations import agents, grants, models
from habilitations.clients import hash_secret
from habilitations.models import ACTIF, REVOQUE, TECHNIQUE, Agent, Habilitation, Souscription
from habilitations.policy import Decision, decide
from habilitations.roles import Principal
from relais.core.db import Database
from relais.core.tables import Client, Organisation
from relais.migrate import upgrade
from tests.conftest import TEST_DATABASE_URL_VARIABLE, _reset_schema
from tests.habilitations.world import RECORDER, request_id

BEFORE_ENFORCEMENT = "c0ffee000002"
RECHERCHE = ("api_rechercher-usagerv2", "rechercheusager", "profil_accedant")
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
_CLIENT_THEN = table(
    "client",
    column("client_id", String()),
    column("secret_hash", String()),
    column("organisation_id", Integer()),
    column("scopes", JSON()),
    column("enabled", Boolean()),
    column("created_at", DateTime()),
    column("updated_at", DateTime()),
)


def _database_before_enforcement(tmp_path: Path) -> str:
    url = os.environ.get(TEST_DATABASE_URL_VARIABLE)
    if url:
        _reset_schema(url)
    else:
        url = f"sqlite:///{(tmp_path / 'old.db').as_posix()}"
    upgrade(url, BEFORE_ENFORCEMENT)
    return url


def test_existing_clients_get_a_transitional_identity_until_the_first_person_is_habilitated(tmp_path: Path) -> None:
    url = _database_before_enforcement(tmp_path)
    database = Database(url)
    try:
        with database.transaction() as session:
            organisation = Organisation(code="CD33", type="CD", libelle="Gironde", territoire=["33"])
            session.add(organisation)
            session.flush()
            # The client table as it stood at that revision (the model has grown columns since).
            session.execute(
                insert(_CLIENT_THEN).values(
                    client_id="editeur-33",
                    secret_hash=hash_secret("s3cret-editeur-33"),
                    organisation_id=organisation.id,
                    scopes=list(RECHERCHE),
                    enabled=True,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        upgrade(url)

        with database.session() as session:
            identity = session.exec(select(Agent).where(Agent.identifiant == models.TRANSITION_IDENTIFIANT)).one()
            assert (identity.type, identity.client_id, identity.etat) == (TECHNIQUE, "editeur-33", ACTIF)
            identity_id = identity.id
            [subscription] = session.exec(select(Souscription)).all()
            assert (subscription.api, sorted(subscription.scopes)) == ("rechercher-usager-v2", sorted(RECHERCHE))
            [grant] = session.exec(select(Habilitation).where(Habilitation.agent_id == identity.id)).all()
            assert grant.finalite == models.TRANSITION_FINALITE
            operations = [event.operation for event in session.exec(select(AuditEvent)).all()]
            assert operations == [
                "habilitations.souscription.definir",
                "habilitations.identite_technique.creer",
                "habilitations.habilitation.accorder",
            ]
            assert _decide(session, "AGT-QUELCONQUE").allowed

        with database.transaction() as session:
            organisation = session.exec(select(Organisation)).one()
            assert organisation.id is not None
            agent = agents.create_agent(
                session,
                Principal.command_line(),
                organisation_id=organisation.id,
                identifiant="AGT-1",
                nom="A",
                now=NOW,
                recorder=RECORDER,
                request_id=request_id(),
            )
            assert agent.id is not None
            grants.grant_habilitation(
                session,
                Principal.command_line(),
                agent_id=agent.id,
                api="rechercher-usager-v2",
                scopes=RECHERCHE,
                finalite="RSA",
                now=NOW,
                recorder=RECORDER,
                request_id=request_id(),
            )
        with database.session() as session:
            assert session.get(Agent, identity_id).etat == REVOQUE  # type: ignore[union-attr]
            assert _decide(session, "AGT-QUELCONQUE").reason == "agent_inconnu"
            assert _decide(session, "AGT-1").allowed
    finally:
        database.dispose()


def test_a_new_install_gets_no_transitional_identity(database: Database) -> None:
    with database.session() as session:
        assert session.exec(select(Agent)).first() is None


def _decide(session: Session, identifiant: str) -> Decision:
    client = session.exec(select(Client).where(Client.client_id == "editeur-33")).one()
    decision = decide(
        session,
        client=client,
        identifiant=identifiant,
        api="rechercher-usager-v2",
        required_scopes=RECHERCHE,
        now=NOW,
        recorder=RECORDER,
        request_id=request_id(),
    )
    session.rollback()
    return decision
