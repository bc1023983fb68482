"""``relais import`` loads an organisation's accounts: subscriptions, agents, RGC
designations and habilitations, through the lifecycle rules, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import col, select

from audit.models import AuditEvent
from habilitations import agents
from habilitations.models import ACTIF, RGC_TITULAIRE, SUSPENDU_INACTIVITE, TECHNIQUE, Agent, Designation, Habilitation
from habilitations.roles import Principal
from relais.cli.main import main
from relais.core.config import get_settings
from relais.core.db import Database
from relais.core.keys import KeySet, load_or_create_keyset
from relais.core.tables import Organisation
from relais.importer import DatasetError, import_records
from tests.habilitations.world import RECORDER, request_id

RECHERCHE = ["api_rechercher-usagerv2", "profil_accedant", "rechercheusager"]
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


def records(**overrides: Any) -> list[dict[str, Any]]:
    habilitation = {
        "organisation": "CD33",
        "agent": "AGT-1",
        "api": "rechercher-usager-v2",
        "scopes": RECHERCHE,
        "finalite": "Accompagnement RSA",
    } | overrides
    return [
        {"type": "organisation", "data": {"code": "CD33", "type": "CD", "libelle": "Gironde", "territoire": ["33"]}},
        {
            "type": "client",
            "data": {"client_id": "cd33", "client_secret": "s" * 20, "organisation": "CD33", "scopes": RECHERCHE},
        },
        {"type": "subscription", "data": {"organisation": "CD33", "api": "rechercher-usager-v2", "scopes": RECHERCHE}},
        {
            "type": "agent",
            "data": {"organisation": "CD33", "identifiant": "AGT-1", "nom": "Martin", "email": "c.martin@cd33.fr"},
        },
        {
            "type": "agent",
            "data": {"organisation": "CD33", "identifiant": "RGC-1", "nom": "Durand", "statut_emploi": "fonctionnaire"},
        },
        {
            "type": "designation",
            "data": {
                "organisation": "CD33",
                "agent": "RGC-1",
                "role": "rgc_titulaire",
                "acte_engagement_le": "2025-02-03",
            },
        },
        {
            "type": "agent",
            "data": {
                "organisation": "CD33",
                "identifiant": "BATCH",
                "type": "technique",
                "client_id": "cd33",
                "nom": "Nuit",
            },
        },
        {"type": "habilitation", "data": habilitation},
        {"type": "habilitation", "data": {**habilitation, "agent": "BATCH", "client_id": "cd33"}},
    ]


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeySet:
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_GENERATE_DEV_KEYS", "true")
    get_settings.cache_clear()
    try:
        return load_or_create_keyset(get_settings())
    finally:
        get_settings.cache_clear()


def test_accounts_are_imported_once_and_audited(database: Database, keys: KeySet) -> None:
    report = import_records(database, keys, records(), now=NOW)
    assert report.as_dict()["agents"] == {"created": 3, "updated": 0, "unchanged": 0}
    assert report.as_dict()["habilitations"] == {"created": 2, "updated": 0, "unchanged": 0}
    assert "désignations : 1 créées, 0 modifiées, 0 inchangées" in report.summary_lines()
    with database.session() as session:
        batch = session.exec(select(Agent).where(Agent.identifiant == "BATCH")).one()
        assert (batch.type, batch.client_id) == (TECHNIQUE, "cd33")
        designation = session.exec(select(Designation)).one()
        assert designation.role == RGC_TITULAIRE and designation.acte_engagement_le.isoformat() == "2025-02-03"  # type: ignore[union-attr]
        grants = session.exec(select(Habilitation)).all()
        assert {g.accordee_par_libelle for g in grants} == {"cli:operateur"}
        channels = {e.channel for e in session.exec(select(AuditEvent)).all()}
        assert channels == {"cli"}
        count = len(session.exec(select(AuditEvent)).all())

    again = import_records(database, keys, records(), now=NOW)
    assert not again.changed
    with database.session() as session:
        assert len(session.exec(select(AuditEvent)).all()) == count


def test_a_changed_grant_replaces_the_active_one(database: Database, keys: KeySet) -> None:
    import_records(database, keys, records(), now=NOW)
    report = import_records(database, keys, records(finalite="Orientation"), now=NOW)
    assert report.as_dict()["habilitations"] == {"created": 0, "updated": 2, "unchanged": 0}
    with database.session() as session:
        agent = session.exec(select(Agent).where(Agent.identifiant == "AGT-1")).one()
        states = sorted(
            (g.finalite, g.etat)
            for g in session.exec(select(Habilitation).where(Habilitation.agent_id == agent.id)).all()
        )
    assert states == [("Accompagnement RSA", "revoque"), ("Orientation", ACTIF)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scopes": ["alimentationusager"]}, "ligne 8 : Scopes hors de la souscription"),
        ({"agent": "AGT-404"}, "ligne 8 : champ agent : agent inconnu"),
    ],
)
def test_a_refused_line_rejects_the_file_naming_the_line_not_the_values(
    database: Database, keys: KeySet, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(DatasetError) as caught:
        import_records(database, keys, records(**change), now=NOW)
    assert str(caught.value).startswith(message)
    assert "c.martin" not in str(caught.value)
    with database.session() as session:
        assert session.exec(select(Agent)).first() is None


def test_an_rgc_must_be_eligible(database: Database, keys: KeySet) -> None:
    lines = records()
    lines[4]["data"]["statut_emploi"] = "interimaire"
    with pytest.raises(DatasetError, match="ligne 6 : Le RGC est un fonctionnaire ou un contractuel"):
        import_records(database, keys, lines, now=NOW)


def test_sweep_command_suspends_overdue_agents_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_DATABASE_URL", database_url)
    monkeypatch.setenv("RELAIS_GENERATE_DEV_KEYS", "true")
    get_settings.cache_clear()
    database = Database(database_url)
    long_ago = datetime.now(UTC) - timedelta(days=70)
    try:
        with database.transaction() as session:
            organisation = Organisation(code="CD33", type="CD", libelle="Gironde", territoire=["33"])
            session.add(organisation)
            session.flush()
            assert organisation.id is not None
            for identifiant in ("AGT-1", "AGT-2"):
                agents.create_agent(
                    session,
                    Principal.command_line(),
                    organisation_id=organisation.id,
                    identifiant=identifiant,
                    nom="X",
                    now=long_ago if identifiant == "AGT-1" else datetime.now(UTC),
                    recorder=RECORDER,
                    request_id=request_id(),
                )
        first = CliRunner().invoke(main, ["habilitations", "sweep"], catch_exceptions=False)
        assert first.exit_code == 0, first.output
        assert "Agents suspendus pour inactivité : 1" in first.output
        second = CliRunner().invoke(main, ["habilitations", "sweep"], catch_exceptions=False)
        assert "Agents suspendus pour inactivité : 0" in second.output
        with database.session() as session:
            states = dict(session.exec(select(Agent.identifiant, Agent.etat).order_by(col(Agent.id))).all())
            sweeps = session.exec(select(AuditEvent).where(AuditEvent.operation == "habilitations.sweep")).all()
        assert states == {"AGT-1": SUSPENDU_INACTIVITE, "AGT-2": ACTIF}
        assert [s.details["suspendus"] for s in sweeps if s.details] == [1, 0]
    finally:
        database.dispose()
        get_settings.cache_clear()
