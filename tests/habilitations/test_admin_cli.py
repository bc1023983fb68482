"""``relais habilitations ...`` admin commands, run in-process on a real migrated database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlmodel import col, select

from audit.models import AuditEvent
from habilitations import subscriptions
from habilitations.models import Habilitation
from habilitations.roles import Principal
from relais.cli.main import main
from relais.core.config import get_settings
from relais.core.db import Database
from relais.core.tables import Organisation
from tests.habilitations.world import RECORDER, request_id

API = "rechercher-usager-v2"
# Every operation of the API needs all three: a grant of fewer would open nothing and is refused.
SCOPES = ("--scope", "api_rechercher-usagerv2", "--scope", "rechercheusager", "--scope", "profil_accedant")


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    for name, value in {
        "RELAIS_DATA_DIR": str(tmp_path),
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_GENERATE_DEV_KEYS": "true",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    database = Database(database_url)
    now = datetime.now(UTC)
    with database.transaction() as session:
        organisation = Organisation(code="CD33", type="CD", libelle="Gironde", territoire=["33"])
        session.add(organisation)
        session.flush()
        assert organisation.id is not None
        subscriptions.set_subscription(
            session,
            Principal.command_line(),
            organisation_id=organisation.id,
            api=API,
            scopes=["api_rechercher-usagerv2", "rechercheusager", "profil_accedant"],
            now=now,
            recorder=RECORDER,
            request_id=request_id(),
        )
    yield database
    database.dispose()
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["habilitations", *args])


def ok(*args: str) -> Any:
    result = run(*args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 else lines


def cli_events(database: Database, operation: str) -> list[AuditEvent]:
    with database.session() as session:
        query = select(AuditEvent).where(AuditEvent.operation == f"relais.cli.habilitations.{operation}")
        return list(session.exec(query.order_by(col(AuditEvent.id))).all())


def test_an_operator_scripts_agents_roles_and_grants(env: Database) -> None:
    rgc = ok("agent-creer", "CD33", "RGC-1", "--nom", "Titulaire", "--statut-emploi", "fonctionnaire")
    designation = ok("designer", "CD33", str(rgc["id"]), "rgc_titulaire", "--acte-engagement", "2026-01-05")
    assert designation["role"] == "rgc_titulaire" and designation["fin"] is None

    presta = ok("agent-creer", "CD33", "PRESTA-1", "--nom", "Presta", "--statut-emploi", "prestataire")
    refused = run("designer", "CD33", str(presta["id"]), "rgc_suppleant", "--acte-engagement", "2026-01-05")
    assert refused.exit_code == 1 and "fonctionnaire ou un contractuel" in refused.output

    agent = ok("agent-creer", "CD33", "AGT-1", "--nom", "Martin")
    grant = ok("accorder", str(agent["id"]), API, *SCOPES, "--finalite", "Instruction RSA")
    assert grant["etat"] == "actif" and grant["accordeePar"] == "cli:operateur"
    outside = run("accorder", str(agent["id"]), "statut-usager-v2", "--scope", "x", "--finalite", "Instruction")
    assert outside.exit_code == 1 and "hors de la souscription" in outside.output

    listed = ok("agents", "CD33", "--etat", "actif")
    assert {row["identifiant"] for row in listed} == {"RGC-1", "PRESTA-1", "AGT-1"}
    blocked = ok("agent-etat", str(agent["id"]), "bloquer", "--motif", "usage_suspect")
    assert blocked["etat"] == "bloque"

    # Each command has its own event on the cli channel, refusals included, without names.
    (denied,) = [e for e in cli_events(env, "accorder") if e.decision == "denied"]
    assert denied.channel == "cli" and denied.reason == "accorder:hors_souscription"
    with env.session() as session:
        for event in session.exec(select(AuditEvent)).all():
            assert "Martin" not in repr(event.model_dump())


def test_an_operator_runs_a_campaign_from_the_command_line(env: Database, tmp_path: Path) -> None:
    agent = ok("agent-creer", "CD33", "AGT-1", "--nom", "Martin")
    grant = ok("accorder", str(agent["id"]), API, *SCOPES, "--finalite", "Instruction RSA")
    deadline = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    campagne = ok("campagne", "ouvrir", "CD33", "--date-limite", deadline)
    assert campagne["elements"] == 1 and campagne["etat"] == "ouverte"

    item = ok("campagne", "elements", campagne["id"])
    assert item["habilitationId"] == grant["id"]
    assert "SANS_JUSTIFICATION" in item["preuves"]["anomalies"]
    undecided = run("campagne", "cloturer", campagne["id"])
    assert undecided.exit_code == 1 and "sans décision" in undecided.output

    decided = ok("campagne", "decider", campagne["id"], item["id"], "revoquer", "--commentaire", "Départ")
    assert decided["decision"] == "revoquer"
    closed = ok("campagne", "cloturer", campagne["id"])
    assert closed["campagne"]["etat"] == "cloturee" and closed["remediationsAppliquees"] == 1

    with env.session() as session:
        revoked = session.get(Habilitation, grant["id"])
        assert revoked is not None and revoked.etat == "revoque"
    denied, event = cli_events(env, "campagne.cloturer")
    assert denied.decision == "denied" and denied.reason == "campagne.cloturer:elements_non_decides"
    assert event.details is not None and event.details["rapport_sha256"] == closed["empreintes"]

    output = tmp_path / "revue.csv"
    written = run("campagne", "rapport", campagne["id"], "--format", "csv", "--sortie", str(output))
    assert written.exit_code == 0, written.output
    assert hashlib.sha256(output.read_bytes()).hexdigest() == closed["empreintes"]["csv"]
    assert closed["empreintes"]["csv"] in written.stderr

    remediation = ok("campagne", "remediations", campagne["id"])
    assert remediation["remediation"] == "appliquee" and remediation["habilitationId"] == grant["id"]


def test_the_review_reports_for_people_come_from_the_command_line_too(env: Database, tmp_path: Path) -> None:
    agent = ok("agent-creer", "CD33", "AGT-1", "--nom", "Martin")
    ok("accorder", str(agent["id"]), API, *SCOPES, "--finalite", "Instruction RSA")
    deadline = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    campagne = ok("campagne", "ouvrir", "CD33", "--date-limite", deadline)

    # Before closure: the draft, as the RGC would sign it, and the tableur.
    draft = tmp_path / "projet.pdf"
    signed = run(
        "campagne", "rapport", campagne["id"], "--format", "pdf", "--sortie", str(draft), "--signataire", "C. Durand"
    )
    assert signed.exit_code == 0, signed.output
    assert draft.read_bytes().startswith(b"%PDF-")
    assert hashlib.sha256(draft.read_bytes()).hexdigest() in signed.stderr
    tableur = run("campagne", "rapport", campagne["id"], "--format", "tableur")
    assert tableur.exit_code == 0 and "AGT-1" in tableur.stdout
    # A PDF is never poured onto a terminal.
    assert run("campagne", "rapport", campagne["id"], "--format", "pdf").exit_code == 2
    # The frozen formats exist only once the campaign is closed.
    assert run("campagne", "rapport", campagne["id"], "--format", "json").exit_code == 1

    # A revocation needs no comment (as on the API); the draft report's event says so.
    (item,) = [ok("campagne", "elements", campagne["id"])]
    decided = ok("campagne", "decider", campagne["id"], item["id"], "revoquer")
    assert decided["decision"] == "revoquer"
    reports = [e for e in cli_events(env, "campagne.rapport") if e.decision == "allowed"]
    assert {(e.details or {}).get("format") for e in reports} == {"pdf", "tableur"}
    assert all((e.details or {}).get("projet") is True for e in reports)
