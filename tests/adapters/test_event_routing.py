"""The domains publish facts without knowing connectors; every way in routes them to the connectors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from adapters.outbound import events as connector_events
from api.app import build_services
from relais.core import outbox
from relais.core.config import Settings
from relais.core.db import Database
from relais.core.outbox import DomainEvent, OutboxMessage
from relais.core.tables import Organisation
from relais.importer import import_records
from tests.adapters.outbound_support import add_connector, keyset

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def unrouted(monkeypatch: pytest.MonkeyPatch) -> None:
    """No subscriber, whatever earlier tests of this process installed."""
    monkeypatch.setattr(outbox, "_subscribers", [])


def _fact(organisation_id: int) -> DomainEvent:
    return DomainEvent(
        type="rendez_vous.pris",
        organisation_ids=(organisation_id,),
        data={"rendezVous": {"id": "RDV-1"}},
        occurred_at=NOW,
    )


def test_a_fact_reaches_each_subscribed_connector_once_routed(database: Database, unrouted: None) -> None:
    keys = keyset()
    add_connector(database, keys, "https://solis.example.org/relais")
    add_connector(database, keys, "https://autre.example.org/relais", name="autre-cd33")
    with database.session() as session:
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        assert cd33.id is not None
        # Nobody listens yet: the fact reaches no one.
        outbox.publish(session, _fact(cd33.id))
        assert session.exec(select(OutboxMessage)).all() == []
        connector_events.install()
        connector_events.install()  # idempotent: still one message per connector
        outbox.publish(session, _fact(cd33.id))
        session.commit()
        told = session.exec(select(OutboxMessage)).all()
    assert sorted(m.recipient for m in told) == ["connecteur:autre-cd33", "connecteur:solis-cd33"]
    assert len({m.payload["id"] for m in told}) == 2
    assert all(m.payload["donnees"] == {"rendezVous": {"id": "RDV-1"}} for m in told)


def test_the_web_app_routes_the_facts(tmp_path: Path, unrouted: None) -> None:
    build_services(Settings(data_dir=tmp_path, generate_dev_keys=True))
    assert connector_events.deliver_event in outbox._subscribers


def test_an_import_routes_the_facts(database: Database, unrouted: None) -> None:
    import_records(database, keyset(), [])
    assert connector_events.deliver_event in outbox._subscribers
