"""``relais admin token --agent ID``: an admin token for an active agent, audited, refused otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import col, select

from audit.models import AuditEvent
from habilitations.models import ACTIF, BLOQUE, SUSPENDU_INACTIVITE, TECHNIQUE, Agent
from habilitations.roles import principal_for
from relais.cli.main import main
from relais.core.access_tokens import TokenAudience, verify_relais_token
from relais.core.admin_tokens import admin_agent_id
from relais.core.config import get_settings
from relais.core.db import Database
from relais.core.keys import load_or_create_keyset
from relais.core.tables import Organisation


@pytest.fixture
def people(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """CD33 with an active agent, a blocked one, one two months idle and a technical identity."""
    for name, value in {
        "RELAIS_DATA_DIR": str(tmp_path),
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_GENERATE_DEV_KEYS": "true",
    }.items():
        monkeypatch.setenv(name, value)
    now = datetime.now(UTC)
    database = Database(database_url)
    ids: dict[str, int] = {}
    with database.transaction() as session:
        organisation = Organisation(code="CD33", type="CD", libelle="Gironde", territoire=["33"])
        session.add(organisation)
        session.flush()
        assert organisation.id is not None
        rows = {
            "actif": Agent(organisation_id=organisation.id, identifiant="AGT-1", nom="Martin", derniere_activite=now),
            "bloque": Agent(organisation_id=organisation.id, identifiant="AGT-2", nom="Roux", etat=BLOQUE),
            "absent": Agent(
                organisation_id=organisation.id,
                identifiant="AGT-3",
                nom="Durand",
                created_at=now - timedelta(days=120),
                derniere_activite=now - timedelta(days=100),
            ),
            "technique": Agent(organisation_id=organisation.id, identifiant="BATCH", nom="Lot", type=TECHNIQUE),
        }
        for key, agent in rows.items():
            session.add(agent)
            session.flush()
            assert agent.id is not None
            ids[key] = agent.id
    database.dispose()
    get_settings.cache_clear()
    yield ids
    get_settings.cache_clear()


def _events(database_url: str) -> list[AuditEvent]:
    database = Database(database_url)
    try:
        with database.session() as session:
            return list(
                session.exec(
                    select(AuditEvent).where(AuditEvent.operation == "admin.jeton.cli").order_by(col(AuditEvent.seq))
                ).all()
            )
    finally:
        database.dispose()


def test_an_active_agent_gets_a_working_admin_token_and_it_is_audited(
    people: dict[str, int], database_url: str
) -> None:
    result = CliRunner().invoke(main, ["admin", "token", "--agent", str(people["actif"])])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    settings = get_settings()
    now = datetime.now(UTC)
    claims = verify_relais_token(
        load_or_create_keyset(settings), settings, token, audience=TokenAudience.ADMIN, now=now
    )
    assert admin_agent_id(claims) == people["actif"] and claims["acr"] == "relais-cli"
    database = Database(database_url)
    with database.session() as session:
        # What the admin APIs' bearer check rebuilds from it: the agent, in their organisation.
        principal = principal_for(session, people["actif"], now, acr=claims["acr"], auth_time=None)
        assert principal is not None and principal.organisation == "CD33"
    database.dispose()
    (event,) = _events(database_url)
    assert (event.channel, event.agent_id, event.organisation, event.http_status, event.decision) == (
        "cli",
        people["actif"],
        "CD33",
        200,
        "allowed",
    )
    assert token not in (event.target or "") and event.acr == "relais-cli"


def test_unknown_blocked_idle_and_technical_agents_are_refused_with_the_reason_audited(
    people: dict[str, int], database_url: str
) -> None:
    runner = CliRunner()
    cases = [
        (999_999, "agent inconnu", "agent_inconnu"),
        (people["bloque"], "le compte n'est pas actif (état : bloque)", "agent_bloque"),
        (people["absent"], "deux mois sans activité", "agent_inactivite"),
        (people["technique"], "identité technique", "agent_non_humain"),
    ]
    for agent_id, message, _ in cases:
        result = runner.invoke(main, ["admin", "token", "--agent", str(agent_id)])
        assert result.exit_code == 1 and result.stdout == "", result.output
        assert message in result.stderr
    assert [(e.reason, e.http_status, e.decision) for e in _events(database_url)] == [
        (reason, 403, "denied") for *_, reason in cases
    ]
    database = Database(database_url)
    with database.session() as session:
        idle = session.get(Agent, people["absent"])
        # Past the two months: suspended there and then, as a ProConnect login would.
        assert idle is not None and idle.etat == SUSPENDU_INACTIVITE
        active = session.get(Agent, people["actif"])
        assert active is not None and active.etat == ACTIF
    database.dispose()
