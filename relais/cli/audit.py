"""The ``relais audit`` command group: verify, checkpoint, purge, public-key.

Other audit modules (search, export) add their commands to ``audit_group``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TextIO

import click

from audit.checkpoints import create_checkpoint, load_public_key, public_key_pem, signing_key
from audit.retention import purge_expired
from audit.verify import VerifyReport, verify_database, verify_export
from audit.verify_scan import Progress
from relais.cli.support import fail, migrated_database
from relais.core.config import get_settings


@click.group("audit")
def audit_group() -> None:
    """Journal d'audit vérifiable : vérification, points de contrôle, purge, clé publique."""


def _fail(message: str) -> NoReturn:
    # Exit 2: a usage problem, told apart from exit 1, "the journal does not verify".
    fail(message, code=2)


_BAR_WIDTH = 30


def progress_bar(stream: TextIO, as_json: bool) -> Progress | None:
    """A progress line on a terminal: ``stream`` is stderr, so the report on stdout stays clean.

    None (no output at all) when the stream is not a terminal (a pipe, a file, a CI log) or
    for ``--json``, whose reader is a program.
    """
    if as_json or not stream.isatty():
        return None
    shown = -1

    def show(done: int, total: int) -> None:
        nonlocal shown
        percent = 100 if total <= 0 else min(100, done * 100 // total)
        if percent == shown and done < total:
            return
        shown = percent
        filled = percent * _BAR_WIDTH // 100
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        counts = f"{done:,} / {total:,}".replace(",", " ")
        stream.write(f"\rVérification du journal [{bar}] {percent:3d} % ({counts} feuilles)")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


def _print_report(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(report.summary())
        for purge in report.purges:
            click.echo(
                f"  purge n° {purge['id']} du {purge['purgedAt']} : contenus des feuilles 0 à {purge['leafEnd'] - 1} "
                f"(événements antérieurs au {purge['cutoff']}), {purge['eventsDeleted']} événements"
            )
        for attempt in report.attempt_list:
            click.echo(
                f"  tentative refusée le {attempt['occurredAt']} : {attempt['reason']} "
                f"(feuille {attempt['leafIndex']}, séquence {attempt['seq']})"
            )
        if report.attempts > len(report.attempt_list):
            click.echo(f"  … et {report.attempts - len(report.attempt_list)} autres tentatives refusées")
        for problem in report.problems[1:]:
            click.echo(f"  puis : {problem.message}")
    if not report.ok:
        sys.exit(1)


@audit_group.command("verify")
@click.option(
    "--export",
    "export_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fichier d'export JSONL à vérifier (sinon : la base configurée).",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Clé publique Ed25519 (PEM) ; répétable. Par défaut : celle de la clé de signature locale.",
)
@click.option("--json", "as_json", is_flag=True, help="Rapport en JSON.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processus qui lisent et recalculent les feuilles en parallèle (par défaut : un par cœur, "
    "jusqu'à 4, pour un grand journal ; 1 : dans ce processus).",
)
def verify_command(export_file: Path | None, public_keys: tuple[Path, ...], as_json: bool, workers: int | None) -> None:
    """Recalcule l'arbre de Merkle et vérifie chaque point de contrôle ; signale la première incohérence."""
    settings = get_settings()
    key_file = settings.resolved_audit_signing_key_file
    if not public_keys and not key_file.exists():
        # Never create a key here: a fresh key would "verify" nothing.
        _fail(f"aucune clé : donnez --public-key (clé publique remise par l'exploitant) ou {key_file}")
    try:
        keys = [load_public_key(path.read_bytes()) for path in public_keys] or [signing_key(settings).public_key()]
    except ValueError as exc:
        _fail(str(exc))
    if export_file is not None:
        with export_file.open(encoding="utf-8") as lines:
            report = verify_export(lines, keys)
    else:
        with migrated_database(settings) as database, database.session() as session:
            report = verify_database(session, keys, workers=workers, progress=progress_bar(sys.stderr, as_json))
    _print_report(report, as_json)


@audit_group.command("checkpoint")
@click.option("--force", is_flag=True, help="Signer même si l'arbre n'a pas grandi.")
@click.option(
    "--every", type=click.IntRange(min=1), default=None, help="Recommencer toutes les N secondes (sinon : une fois)."
)
def checkpoint_command(force: bool, every: int | None) -> None:
    """Scelle les événements en attente dans l'arbre et signe un point de contrôle."""
    settings = get_settings()
    with migrated_database(settings) as database:
        while True:
            checkpoint = create_checkpoint(database, settings, now=datetime.now(UTC), force=force)
            if checkpoint is None:
                click.echo("Aucun nouvel événement : pas de nouveau point de contrôle.")
            else:
                click.echo(
                    f"Point de contrôle n° {checkpoint.id} : {checkpoint.tree_size} feuilles, "
                    f"racine {checkpoint.root_hash}, clé {checkpoint.key_id}"
                )
            if every is None:
                return
            time.sleep(every)


@audit_group.command("purge")
def purge_command() -> None:
    """Supprime le contenu des événements plus anciens que la durée de conservation (garde les empreintes)."""
    settings = get_settings()
    with migrated_database(settings) as database:
        result = purge_expired(database, settings, now=datetime.now(UTC))
    if result.purge_id is None:
        click.echo(f"Rien à purger (conservation : {settings.audit_retention_days} jours).")
    else:
        click.echo(
            f"Purge n° {result.purge_id} : {result.events_deleted} événements antérieurs au "
            f"{result.cutoff.isoformat()} (feuilles jusqu'à {result.leaf_end - 1}) ; "
            "empreintes et points de contrôle conservés."
        )


@audit_group.command("public-key")
def public_key_command() -> None:
    """Affiche la clé publique (PEM) qui vérifie les points de contrôle, à remettre au CSSI / RSSI."""
    click.echo(public_key_pem(get_settings()), nl=False)
