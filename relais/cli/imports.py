"""``relais fichiers``: import editors' CSV files and run pull connectors."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from relais.cli.support import fail, load_keys, migrate_database, open_database

# Exit codes: 0 done (or already imported), 1 configuration or network problem, 3 file rejected
# (the same code as ``relais import`` uses for a rejected dataset).
EXIT_REJECTED = 3


@click.group("fichiers")
def fichiers_group() -> None:
    """Flux entrants des éditeurs : fichiers CSV et connecteurs d'API."""


@fichiers_group.command("formats")
def formats_command() -> None:
    """Liste les formats de fichier disponibles et leurs colonnes."""
    from adapters.inbound.mapping import available_formats, load_format
    from relais.core.config import get_settings

    extra = get_settings().inbound_formats_dir
    for name in available_formats(extra):
        feed_format = load_format(name, extra)
        click.echo(f"{name} ({feed_format.enregistrement}) : {feed_format.description}")
        identite = ", ".join(feed_format.identite.values())
        click.echo(f"  identité : {identite}")
        for column, spec in feed_format.colonnes.items():
            flag = " (obligatoire)" if spec.obligatoire else ""
            click.echo(f"  {column} -> {spec.champ} [{spec.type}]{flag}")


@fichiers_group.command("import")
@click.option("--format", "format_name", required=True, help="Nom du format (relais fichiers formats).")
@click.option(
    "--organisation", required=True, help="Code de l'organisation dont l'éditeur a produit le fichier (ex. CD33)."
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
def import_command(format_name: str, organisation: str, file: Path) -> None:
    """Importe un fichier CSV d'éditeur en une transaction ; un fichier déjà importé ne change rien."""
    # Imported here, as relais/cli/main.py does for the importer: jsonschema is slow to load.
    from adapters.inbound.csv_import import import_csv
    from adapters.inbound.feed import FeedRejected
    from adapters.inbound.mapping import FormatError, load_format
    from audit.journal import JournalRecorder
    from relais.core.config import get_settings

    settings = get_settings()
    try:
        feed_format = load_format(format_name, settings.inbound_formats_dir)
    except FormatError as exc:
        fail(str(exc))
    migrate_database(settings)
    keys = load_keys(settings)
    _route_domain_events()
    with open_database(settings) as database:
        try:
            result = import_csv(database, keys, file, feed_format, organisation=organisation, audit=JournalRecorder())
        except FeedRejected as rejected:
            click.echo(f"Fichier refusé, rien n'a été importé ({len(rejected.errors)} erreur(s)) :", err=True)
            for error in rejected.errors:
                click.echo(f"  {error}", err=True)
            sys.exit(EXIT_REJECTED)
    if result.already_imported_at is not None:
        click.echo(
            f"Fichier déjà importé le {result.already_imported_at:%Y-%m-%d %H:%M} UTC (sha256 {result.sha256}) : "
            "rien n'a changé."
        )
        return
    _echo_report(f"Import terminé ({file.name}, sha256 {result.sha256}) :", result.report.as_dict())


@fichiers_group.command("pull")
@click.argument("name")
def pull_command(name: str) -> None:
    """Lit l'API d'un éditeur depuis le dernier curseur et enregistre ce qu'elle renvoie."""
    from adapters.inbound.feed import FeedRejected
    from adapters.inbound.mapping import FormatError, load_format
    from adapters.inbound.pull import PullError, load_connectors, pull
    from audit.journal import JournalRecorder
    from relais.core.config import get_settings

    settings = get_settings()
    try:
        connectors = load_connectors(settings.pull_connectors_file)
        if name not in connectors:
            fail(f"connecteur inconnu : « {name} » ; configurés : {', '.join(sorted(connectors)) or 'aucun'}")
        config = connectors[name]
        feed_format = load_format(config.format, settings.inbound_formats_dir)
    except (PullError, FormatError) as exc:
        fail(str(exc))
    migrate_database(settings)
    keys = load_keys(settings)
    _route_domain_events()
    with open_database(settings) as database:
        try:
            run = pull(database, keys, config, feed_format, audit=JournalRecorder())
        except PullError as exc:
            fail(f"{name} : {exc} ; le curseur n'a pas bougé")
        except FeedRejected as rejected:
            click.echo(
                f"{name} : données refusées, rien n'a été enregistré ({len(rejected.errors)} erreur(s)) :", err=True
            )
            for error in rejected.errors:
                click.echo(f"  {error}".replace("ligne", "élément", 1), err=True)
            sys.exit(EXIT_REJECTED)
    _echo_report(
        f"{name} : {run.pages} page(s) lue(s), curseur {run.cursor_before or '-'} -> {run.cursor_after or '-'}",
        run.report.as_dict(),
    )


@fichiers_group.command("etat")
@click.option("--limite", default=20, show_default=True, help="Nombre de fichiers récents affichés.")
def etat_command(limite: int) -> None:
    """Derniers fichiers importés et état de chaque connecteur d'API (dernier passage, curseur, erreur)."""
    from sqlmodel import col, select

    from adapters.inbound.models import ImportedFile, PullCursor
    from relais.core.config import get_settings

    settings = get_settings()
    migrate_database(settings)
    with open_database(settings) as database, database.session() as session:
        files = session.exec(select(ImportedFile).order_by(col(ImportedFile.imported_at).desc()).limit(limite)).all()
        cursors = session.exec(select(PullCursor).order_by(col(PullCursor.name))).all()
    click.echo("Fichiers importés :" if files else "Aucun fichier importé.")
    for imported in files:
        report = imported.report
        click.echo(
            f"  {imported.imported_at:%Y-%m-%d %H:%M} {imported.format} sha256 {imported.sha256[:16]}… "
            f"{report.get('lignes', 0)} lignes, {report.get('crees', 0)} créées, {report.get('modifies', 0)} modifiées"
        )
    click.echo("Connecteurs d'API :" if cursors else "Aucun connecteur d'API n'a encore tourné.")
    for state in cursors:
        when = f"{state.last_run_at:%Y-%m-%d %H:%M}" if state.last_run_at else "-"
        line = f"  {state.name} : {state.last_status or '-'} le {when}, curseur {state.cursor or '-'}"
        click.echo(line + (f" ({state.last_error})" if state.last_error else ""))


def _route_domain_events() -> None:
    """What a feed changes reaches the organisations' connectors, as through the API."""
    from adapters.outbound import events as connector_events

    connector_events.install()


def _echo_report(title: str, report: dict[str, object]) -> None:
    click.echo(title)
    click.echo(
        f"  lignes : {report['lignes']} ; créées : {report['crees']}, modifiées : {report['modifies']}, "
        f"inchangées : {report['inchanges']}"
    )
    rules = report.get("regles") or {}
    if rules:
        described = ", ".join(f"{rule} {count}" for rule, count in rules.items())  # type: ignore[attr-defined]
        click.echo(f"  usagers identifiés par : {described}")
