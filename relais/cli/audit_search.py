"""``relais audit search``, ``export``, ``detect`` and ``incidents``.

The hub operator's command line sees every organisation (it is the machine's administrator,
``Principal.command_line()``). Each command leaves its own audit event (channel ``cli``) with
the names of the filters used, never their values: a NIR typed here is resolved to the
usager's blind index and internal id and goes no further. A NIR is read from the
``RELAIS_AUDIT_NIR`` variable or typed at a hidden prompt, never from a command-line argument,
so that it does not land in the shell history or the process list.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import click
from sqlmodel import Session

from api.admin.audit_usager import resolve_usager
from audit.detection import run_detection
from audit.incidents import incident_json, list_incidents
from audit.journal import append_event
from audit.refusals import AuditRefused
from audit.search import Filters, UsagerCible, csv_lines, event_json, iter_events, jsonl_records, search
from relais.cli.audit import audit_group
from relais.cli.support import fail, migrated_database
from relais.core.auditing import AuditDraft
from relais.core.config import get_settings
from relais.core.keys import KeySetError, load_or_create_keyset
from relais.core.nir import NirError

NIR_VARIABLE = "RELAIS_AUDIT_NIR"


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _usager(session: Session, nir_prompt: bool, numero: str | None) -> UsagerCible | None:
    if not nir_prompt and numero is None:
        return None
    nir = None
    if nir_prompt:
        nir = os.environ.get(NIR_VARIABLE) or click.prompt("NIR de l'usager", hide_input=True)
    try:
        keys = load_or_create_keyset(get_settings())
    except KeySetError as exc:
        fail(str(exc))
        raise
    try:
        return resolve_usager(session, keys, nir=nir, numero=numero)
    except NirError as exc:
        fail(str(exc))
        raise


def _filter_options(function: Any) -> Any:
    options = [
        click.option("--nir", "nir_prompt", is_flag=True, help=f"Usager par NIR (lu dans {NIR_VARIABLE} ou saisi)."),
        click.option("--numero", default=None, help="Usager par numéro France Travail."),
        click.option("--agent-id", type=int, default=None, help="Agent (identifiant interne)."),
        click.option("--agent", "agent_identifiant", default=None, help="Agent (pa-identifiant-agent)."),
        click.option("--organisation", default=None, help="Code de l'organisation (ex. CD33)."),
        click.option("--client", "client_id", default=None, help="Application cliente."),
        click.option("--operation", default=None, help="Opération (operationId)."),
        click.option("--decision", type=click.Choice(["allowed", "denied", "error"]), default=None),
        click.option("--debut", default=None, help="Début de période (ISO 8601, inclus)."),
        click.option("--fin", default=None, help="Fin de période (ISO 8601, exclue)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _filters(session: Session, options: dict[str, Any]) -> Filters:
    try:
        debut, fin = _moment(options["debut"]), _moment(options["fin"])
    except ValueError:
        fail("--debut ou --fin n'est pas une date-heure ISO 8601")
        raise
    return Filters(
        usager=_usager(session, options["nir_prompt"], options["numero"]),
        agent_id=options["agent_id"],
        agent_identifiant=options["agent_identifiant"],
        organisation=options["organisation"],
        client_id=options["client_id"],
        operation=options["operation"],
        decision=options["decision"],
        debut=debut,
        fin=fin,
    )


def _audit(session: Session, operation: str, filters: Filters, **details: Any) -> None:
    draft = AuditDraft(
        channel="cli",
        operation=operation,
        target=filters.usager.reference if filters.usager is not None else None,
        details={"acteur": "cli:operateur", "filtres": filters.names(), **details},
    )
    append_event(session, draft, request_id=f"cli-{uuid.uuid4().hex}", http_status=200, occurred_at=datetime.now(UTC))


@audit_group.command("search")
@_filter_options
@click.option("--limite", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--curseur", default=None, help="Curseur de la page suivante (affiché en fin de page).")
def search_command(limite: int, curseur: str | None, **options: Any) -> None:
    """Recherche des événements du journal (les plus récents d'abord), une ligne JSON par événement."""
    with migrated_database(get_settings()) as database, database.transaction() as session:
        filters = _filters(session, options)
        try:
            page = search(session, filters, limit=limite, cursor=curseur)
        except AuditRefused as refused:
            fail(refused.message)
            raise
        _audit(session, "audit.search", filters)
    for event in page.events:
        click.echo(json.dumps(event_json(event), ensure_ascii=False))
    click.echo(f"Total : {page.total} événement(s)", err=True)
    if page.next_cursor:
        click.echo(f"Page suivante : --curseur {page.next_cursor}", err=True)


@audit_group.command("export")
@_filter_options
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="Fichier (défaut : stdout).")
def export_command(fmt: str, output: Any, **options: Any) -> None:
    """Exporte les événements (du plus ancien au plus récent) en CSV ou JSON Lines (avec preuves)."""
    with migrated_database(get_settings()) as database, database.transaction() as session:
        filters = _filters(session, options)
        count = 0
        if fmt == "csv":
            for line in csv_lines(iter_events(session, filters)):
                output.write(line)
                count += 1
            count -= 1  # the header row
        else:
            records = jsonl_records(session, filters, settings=get_settings(), now=datetime.now(UTC))
            for record in records:
                output.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        _audit(session, "audit.export", filters, format=fmt)
    click.echo(f"Export terminé ({fmt}) : {count} enregistrement(s).", err=True)


@audit_group.command("detect")
def detect_command() -> None:
    """Évalue les règles de détection sur les nouveaux événements (idempotent, à planifier)."""
    settings = get_settings()
    with migrated_database(get_settings()) as database:
        report = run_detection(database, settings, now=lambda: datetime.now(UTC))
    click.echo(
        f"Événements évalués : {report.evaluated} ; alertes : {report.alerts} ; "
        f"incidents ouverts : {len(report.opened)}"
    )
    for incident_id in report.opened:
        click.echo(f"  incident {incident_id}")


@audit_group.command("incidents")
@click.option("--etat", type=click.Choice(["OUVERT", "QUALIFIE", "NOTIFIE", "CLOS"]), default=None)
@click.option("--limite", type=click.IntRange(1, 500), default=100, show_default=True)
def incidents_command(etat: str | None, limite: int) -> None:
    """Liste les incidents ouverts par les règles de détection (les plus récents d'abord)."""
    now = datetime.now(UTC)
    with migrated_database(get_settings()) as database, database.session() as session:
        rows, total = list_incidents(session, None, etat=etat, regle=None, limit=limite)
        for row in rows:
            click.echo(json.dumps(incident_json(row, now), ensure_ascii=False))
    click.echo(f"Total : {total} incident(s)", err=True)
