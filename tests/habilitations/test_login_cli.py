"""``relais proconnect``: the SIRET directory and the configuration check, on a real database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpx import HTTPXMock
from sqlmodel import select

from audit.models import AuditEvent
from relais.cli.main import main
from relais.core.config import get_settings
from relais.core.db import Database
from relais.core.tables import Organisation
from tests.fakes.proconnect import FakeProConnect

SIRET = "22330001300016"


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    variables = {
        "RELAIS_DATA_DIR": str(tmp_path),
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_GENERATE_DEV_KEYS": "true",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    database = Database(database_url)
    with database.transaction() as session:
        session.add(Organisation(code="CD33", type="CD", libelle="Gironde", territoire=["33"]))
        session.add(Organisation(code="CD93", type="CD", libelle="Seine-Saint-Denis", territoire=["93"]))
    database.dispose()
    get_settings.cache_clear()
    yield variables
    get_settings.cache_clear()


def test_sirets_are_attached_listed_and_detached_with_an_audit_event_each(env: dict[str, str]) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["proconnect", "siret", "add", "CD33", SIRET, "22330001300024"])
    assert added.exit_code == 0, added.output
    again = runner.invoke(main, ["proconnect", "siret", "add", "CD33", SIRET])
    assert again.exit_code == 0 and "0 ajouté(s), 1 déjà présent(s)" in again.output

    listed = runner.invoke(main, ["proconnect", "siret", "list"])
    # stdout only: the log lines of the migration run before may go to stderr.
    assert listed.stdout.splitlines() == [f"{SIRET}\tCD33", "22330001300024\tCD33"]

    removed = runner.invoke(main, ["proconnect", "siret", "remove", SIRET])
    assert removed.exit_code == 0, removed.output
    assert runner.invoke(main, ["proconnect", "siret", "list", "--organisation", "CD33"]).stdout.splitlines() == [
        "22330001300024\tCD33"
    ]
    database = Database(env["RELAIS_DATABASE_URL"])
    with database.session() as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.channel == "cli")).all()
    database.dispose()
    assert [(event.operation, event.target) for event in events] == [
        ("proconnect.siret.ajouter", f"siret:{SIRET}"),
        ("proconnect.siret.ajouter", "siret:22330001300024"),
        ("proconnect.siret.retirer", f"siret:{SIRET}"),
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["add", "CD33", "1234"], "SIRET invalide"),
        (["add", "CD99", SIRET], "organisation inconnue"),
        (["remove", SIRET], "SIRET inconnu"),
    ],
)
def test_bad_sirets_are_refused(env: dict[str, str], arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["proconnect", "siret", *arguments])
    assert result.exit_code == 1 and message in result.output


def test_a_siret_belongs_to_one_organisation(env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["proconnect", "siret", "add", "CD33", SIRET]).exit_code == 0
    result = runner.invoke(main, ["proconnect", "siret", "add", "CD93", SIRET])
    assert result.exit_code == 1 and "autre organisation" in result.output


def test_check_reads_the_provider_configuration(
    env: dict[str, str], httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeProConnect()
    fake.install(httpx_mock)
    monkeypatch.setenv("RELAIS_PROCONNECT_ISSUER", fake.issuer)
    monkeypatch.setenv("RELAIS_PROCONNECT_CLIENT_ID", fake.client_id)
    monkeypatch.setenv("RELAIS_PROCONNECT_CLIENT_SECRET", fake.client_secret)
    monkeypatch.setenv("RELAIS_PROCONNECT_REDIRECT_URI", fake.redirect_uris[0])
    monkeypatch.setenv("RELAIS_PROCONNECT_ACCEPTED_ACR", '["eidas2", "eidas3"]')
    get_settings.cache_clear()

    result = CliRunner().invoke(main, ["proconnect", "check"])

    assert result.exit_code == 0, result.output
    assert f"Émetteur : {fake.issuer}" in result.output
    assert "Clés de signature publiées : 1" in result.output
    assert "Niveaux acceptés (acr) : eidas2, eidas3" in result.output


def test_check_says_what_is_missing(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["proconnect", "check"])
    assert result.exit_code == 1
    assert re.search(r"RELAIS_PROCONNECT_ISSUER.*RELAIS_PROCONNECT_REDIRECT_URI", result.output)
