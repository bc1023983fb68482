"""The ``relais`` command line, run in-process on a real migrated database."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import uvicorn
from click.testing import CliRunner, Result
from sqlmodel import select

from audit.models import AuditEvent
from habilitations.clients import authenticate_client
from parcours import contrat as contrat_domain
from parcours.tables import ContratEngagement, Usager
from relais.cli.main import main
from relais.cli.support import redact_database_url
from relais.core.config import get_settings
from relais.core.db import Database
from relais.core.nir import nir_key
from relais.core.tables import Organisation
from relais.demo.dataset import PARTENAIRE_SCOPES

ORGANISATION = {
    "type": "organisation",
    "data": {"code": "CD33", "type": "CD", "libelle": "Gironde", "territoire": ["33"]},
}


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    variables = {
        "RELAIS_DATA_DIR": str(tmp_path),
        "RELAIS_DATABASE_URL": database_url,
        # The embedded default allows development keys by itself; PostgreSQL needs the flag.
        "RELAIS_GENERATE_DEV_KEYS": "true",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield variables
    get_settings.cache_clear()


# Loggers whose level or state relais.core.observability.configure_logging changes.
_TOUCHED_LOGGERS = ("connexion", "uvicorn.access")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``serve`` builds the app, which configures logging on the runner's soon-closed stdout."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    others = {name: (logging.getLogger(name).level, logging.getLogger(name).disabled) for name in _TOUCHED_LOGGERS}
    structlog_config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (other_level, disabled) in others.items():
        logging.getLogger(name).setLevel(other_level)
        logging.getLogger(name).disabled = disabled
    structlog.configure(**structlog_config)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def usager_line(nir13: str, numero: str = "10000000001") -> dict[str, Any]:
    return {
        "type": "usager",
        "data": {
            "numeroFranceTravail": numero,
            "etatCivil": {"nom": "DUPONT", "prenom": "JEAN", "dateNaissance": "1985-07-14", "nir": nir13},
            "adresses": [{"codeInseeCommune": "33063", "codePostal": "33000"}],
        },
    }


def write_jsonl(path: Path, records: list[Any], blank_lines: int = 0) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n" * (blank_lines + 1), encoding="utf-8")
    return path


def test_db_upgrade_reports_the_database(env: dict[str, str]) -> None:
    result = run("db", "upgrade")

    assert result.exit_code == 0
    assert result.stdout.startswith("Base de données à jour : ")
    assert len(result.stdout.splitlines()) == 1


def test_database_urls_are_shown_without_password() -> None:
    shown = redact_database_url("postgresql://relais:motdepasse@db.example.org:5432/relais")

    assert "motdepasse" not in shown and "db.example.org" in shown


def test_import_prints_counts_and_is_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    nir = "1850733063001"
    path = write_jsonl(tmp_path / "data.jsonl", [ORGANISATION, usager_line(nir + nir_key(nir))])

    first = run("import", str(path))
    second = run("import", str(path))

    assert first.exit_code == 0, first.output
    assert "usagers : 1 créés, 0 modifiés, 0 inchangés" in first.stdout
    assert "organisations : 0 créées, 0 modifiées, 1 inchangées" in second.stdout
    assert "usagers : 0 créés, 0 modifiés, 1 inchangés" in second.stdout


def test_import_rejects_a_bad_file_with_exit_code_2(env: dict[str, str], database: Database, tmp_path: Path) -> None:
    nir = "1850733063001"
    bad_key = "01" if nir_key(nir) != "01" else "02"
    path = write_jsonl(tmp_path / "data.jsonl", [ORGANISATION, usager_line(nir), usager_line(nir + bad_key, "2" * 11)])

    result = run("import", str(path))

    assert result.exit_code == 2
    assert "ligne 3 : NIR invalide (clé de contrôle incorrecte)" in result.stderr
    assert result.stdout == ""
    assert nir not in result.output and "DUPONT" not in result.output
    with database.session() as session:
        assert session.exec(select(Organisation)).all() == []


def test_import_shows_progress_on_large_files(env: dict[str, str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [ORGANISATION], blank_lines=1200)

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    assert "lignes" in result.stderr


def test_demo_json_gives_working_credentials(env: dict[str, str], database: Database) -> None:
    result = run("demo", "--json")
    again = run("demo", "--json")

    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert json.loads(again.stdout) == facts
    assert "usagers : 0 créés, 0 modifiés, 300 inchangés" in again.stderr
    assert facts["token_url"] == "http://127.0.0.1:8000/connexion/oauth2/access_token?realm=/agent"
    assert facts["api_base_url"] == "http://127.0.0.1:8000/partenaire"
    assert "http://127.0.0.1:8000/partenaire/rechercher-usager/v2/ui/" in facts["docs"]
    assert len(facts["usagers"]) == 3
    assert all(len(usager["nir"]) == 15 for usager in facts["usagers"])
    first = facts["clients"][0]
    assert first["scopes"] == list(PARTENAIRE_SCOPES)
    with database.session() as session:
        assert authenticate_client(session, first["client_id"], first["client_secret"]) is not None


def test_demo_prints_a_curl_walkthrough(env: dict[str, str]) -> None:
    result = run("demo")

    assert result.exit_code == 0, result.output
    for expected in (
        "demo-cd33-secret-change-me-0001",
        "ft-jeton-usager",
        "pa-nom-agent",
        "pa-identifiant-agent",
    ):
        assert expected in result.stdout
    assert "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail" in result.stdout


def test_clients_create_prints_a_working_secret_once(env: dict[str, str], database: Database, tmp_path: Path) -> None:
    run("import", str(write_jsonl(tmp_path / "org.jsonl", [ORGANISATION])))
    args = ["clients", "create", "--client-id", "cd33-app", "--organisation", "CD33"]

    created = run(*args, "--scope", "api_rechercher-usagerv2", "--scope", "rechercheusager profil_accedant")
    duplicate = run(*args, "--scope", "rechercheusager")
    unknown = run("clients", "create", "--client-id", "x-app", "--organisation", "CD99", "--scope", "a")

    assert created.exit_code == 0, created.output
    secret = next(line.split(" : ", 1)[1] for line in created.stdout.splitlines() if "secret :" in line)
    assert "ne sera plus jamais affiché" in created.stderr
    with database.session() as session:
        client = authenticate_client(session, "cd33-app", secret)
        assert client is not None
        assert client.scopes == ["api_rechercher-usagerv2", "rechercheusager", "profil_accedant"]
    assert duplicate.exit_code == 1
    assert "Le client « cd33-app » existe déjà" in duplicate.stderr
    assert "secret" not in duplicate.stdout
    assert unknown.exit_code == 1 and "Organisation inconnue" in unknown.stderr


def test_keys_rotate_puts_a_new_signing_key_first(env: dict[str, str], tmp_path: Path) -> None:
    result = run("keys", "rotate")

    assert result.exit_code == 0, result.output
    kid = result.stdout.splitlines()[0].removeprefix("Nouvelle clé de signature : ")
    document = json.loads((tmp_path / "keys.json").read_text(encoding="utf-8"))
    assert document["signing_keys"][0]["kid"] == kid
    assert len(document["signing_keys"]) == 2


@pytest.mark.usefixtures("restore_logging")
def test_serve_migrates_prints_the_banner_and_runs_uvicorn(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    # The server itself is not started: its arguments are recorded instead.
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))

    result = run("serve", "--port", "8123")

    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/connexion/oauth2/access_token?realm=/agent" in result.stdout
    for path in (
        "/connexion/ui/",
        "/partenaire/informations-administratives/v1/ui/",
        "/partenaire/contrat-usager/v2/ui/",
    ):
        assert f"http://127.0.0.1:8123{path}" in result.stdout
    assert "relais demo" in result.stdout
    assert len(calls) == 1
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 8123 and calls[0]["log_config"] is None


def test_parcours_sweep_closes_contracts_suspended_for_a_year_once(
    env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    assert (
        run("import", str(write_jsonl(tmp_path / "d.jsonl", [ORGANISATION, usager_line("1850733063001")]))).exit_code
        == 0
    )
    long_ago = datetime.now(UTC) - timedelta(days=400)
    with database.session() as session:
        usager = session.exec(select(Usager)).one()
        contrat_domain.signer_premier(
            session,
            usager.id,
            date_signature=long_ago,
            agent={"nom": "Martin", "prenom": "Claire", "identifiant": "AGT-1"},
            organisme="CD",
            contenu={},
            now=long_ago,
        )
        contrat_domain.suspendre_sur_cessation(session, usager.id, now=long_ago)
        session.commit()

    first = run("parcours", "sweep")
    second = run("parcours", "sweep")

    assert first.stdout.strip() == "Contrats d'engagement clôturés : 1"
    assert second.stdout.strip() == "Contrats d'engagement clôturés : 0"
    with database.session() as session:
        assert session.exec(select(ContratEngagement)).one().etat == "CLOTURE"
        sweeps = session.exec(select(AuditEvent).where(AuditEvent.operation == "parcours.sweep")).all()
    assert [(event.channel, event.reason) for event in sweeps] == [
        ("cli", "contrats_clotures:1"),
        ("cli", "contrats_clotures:0"),
    ]
