"""``relais connecteurs``: create, deliver, watch, replay, pause, check an endpoint — and audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from sqlmodel import col, select

from audit.models import AuditEvent
from relais.cli.main import main
from relais.core.config import get_settings
from relais.core.db import Database
from tests.adapters.outbound_support import add_organisation, editor, messages, publish


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "RELAIS_DATA_DIR": str(tmp_path),
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_GENERATE_DEV_KEYS": "true",
        "RELAIS_CONNECTOR_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``worker`` configures logging (JSON on stderr): put the test run's configuration back."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["connecteurs", *args], catch_exceptions=False)


def test_the_operator_s_whole_routine(env: None, database: Database) -> None:
    with database.session() as session:
        add_organisation(session, "CD33")
        session.commit()
    with editor({}) as fake:
        created = run(
            "create", "solis-cd33", "--organisation", "CD33", "--url", fake.url, "--event", "*", "--allow-http"
        )
        assert created.exit_code == 0, created.output
        kid, secret = created.output.splitlines()[-1].rsplit(" ", 1)[-1].split("=", 1)
        fake.state.keys[kid] = secret.encode()

        checked = run("test", "solis-cd33")
        assert checked.exit_code == 0, checked.output
        assert "Résultat : conforme" in checked.output

        (first,) = publish(database, 1)
        fake.switches.fail = 1
        assert run("worker", "--once").stdout.strip() == "Messages traités : 1"
        status = run("status", "solis-cd33", "--statut", "ABANDONNE")
        assert first in status.output and "dernière erreur : réponse HTTP 500" in status.output

        assert run("replay", "solis-cd33", "--event", first).stdout.strip() == "Messages remis en file : 1"
        assert run("pause", "solis-cd33").exit_code == 0
        run("worker", "--once")
        delivered = [e["id"] for e in fake.state.received if e["type"] != "relais.test"]
        assert delivered == []  # paused: it waits
        assert "messages en attente : 1" in run("resume", "solis-cd33").stdout
        run("worker", "--once")
        assert [e["id"] for e in fake.state.received if e["type"] != "relais.test"] == [first]
    listed = run("list").stdout
    assert "solis-cd33  [CD33]  actif" in listed and "LIVRE 1" in listed
    assert {m.status for m in messages(database)} == {"delivered"}
    with database.session() as session:
        operations = [
            e.operation
            for e in session.exec(select(AuditEvent).where(AuditEvent.channel == "cli").order_by(col(AuditEvent.seq)))
        ]
    assert operations == [
        "connecteurs.creation",
        "connecteurs.rejeu",
        "connecteurs.suspension",
        "connecteurs.reprise",
    ]


def test_update_changes_what_is_given(env: None, database: Database) -> None:
    with database.session() as session:
        add_organisation(session, "CD33")
        session.commit()
    run("create", "solis-cd33", "--organisation", "CD33", "--url", "https://a.example.org/", "--event", "*")
    updated = run("update", "solis-cd33", "--url", "https://b.example.org/", "--event", "rendez_vous.pris")
    assert updated.stdout.strip() == "Connecteur solis-cd33 modifié : url, evenements"
    status = run("status", "solis-cd33").stdout
    assert "Événements : rendez_vous.pris" in status
    assert "https://b.example.org/" in run("list").stdout


def test_refusals_are_clear(env: None, database: Database) -> None:
    with database.session() as session:
        add_organisation(session, "CD33")
        session.commit()
    http = CliRunner().invoke(
        main, ["connecteurs", "create", "x-cd33", "--organisation", "CD33", "--url", "http://e.org"]
    )
    assert http.exit_code != 0 and "https://" in http.output
    unknown = CliRunner().invoke(main, ["connecteurs", "replay", "absent", "--event", "0" * 32])
    assert unknown.exit_code != 0 and "connecteur inconnu : absent" in unknown.output
    event = CliRunner().invoke(
        main, ["connecteurs", "create", "y-cd33", "--organisation", "CD33", "--url", "https://e.org", "--event", "x"]
    )
    assert event.exit_code != 0 and "type d'événement inconnu : x" in event.output
    smtp_url = "smtp://mail.cd33.fr"
    mail = CliRunner().invoke(
        main, ["connecteurs", "create", "z-cd33", "--organisation", "CD33", "--url", smtp_url, "--event", "*"]
    )
    assert mail.exit_code != 0 and "porte les notifications" in mail.output
    ok = run("create", "alertes-cd33", "--organisation", "CD33", "--url", "smtps://mail.cd33.fr", "--notifications")
    assert ok.exit_code == 0, ok.output
    assert "alertes-cd33  [CD33]  actif  smtps://mail.cd33.fr" in run("list").stdout
