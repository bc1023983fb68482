"""The ``relais`` command line: database, server, imports, demo data, clients and keys.

This module holds the top-level commands and gathers the command groups that live in their
own modules (``audit``, ``habilitations``, ``connecteurs``, ``fichiers``, ``proconnect``).
Every command reads its configuration from ``RELAIS_*`` variables (``relais.core.config``) and
migrates the database first, so that a fresh install works with a single command. Personal
data is printed by ``relais demo`` only: its usagers are synthetic and meant to be typed.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

# Imported for the commands they add to the ``audit`` and ``habilitations`` groups.
import relais.cli.audit_search
import relais.cli.habilitations_admin
import relais.cli.habilitations_campagnes  # noqa: F401
from audit.journal import append_event
from habilitations.clients import ClientRegistryError, create_client
from parcours.contrat import cloturer_suspensions_echues
from relais.cli.admin_token import admin_group
from relais.cli.audit import audit_group
from relais.cli.connecteurs import connecteurs_group
from relais.cli.connexion import proconnect_group
from relais.cli.habilitations import habilitations_group
from relais.cli.imports import fichiers_group
from relais.cli.support import fail, load_keys, migrate_database, open_database
from relais.core.auditing import AuditDraft
from relais.core.config import get_settings
from relais.core.keys import KeySetError, rotate_signing_key
from relais.demo.dataset import (
    DEMO_CLIENTS,
    FOUNDATION_SCOPES,
    build_demo_records,
    demo_samples,
    seed_demo_diagnostics,
)
from specs import served_documents

OAUTH2_ENDPOINT = "/connexion/oauth2/access_token?realm=/agent"
API_PATH = "/partenaire"
RECHERCHE_PAR_NUMERO_PATH = "/partenaire/rechercher-usager/v2/usagers/par-numero-francetravail"
INFORMATIONS_PATH = "/partenaire/informations-administratives/v1/usager"
CONTRAT_PATH = "/partenaire/contrat-usager/v2/contrat"
# Beyond this many lines an import shows a progress bar.
PROGRESS_THRESHOLD = 1000
EXIT_DATASET_ERROR = 2
DEMO_AGENT = {"pa-nom-agent": "Martin", "pa-prenom-agent": "Claire", "pa-identifiant-agent": "AGT-0042"}


@click.group()
def main() -> None:
    """Relais : API partenaires France Travail (SI Plateforme) pour les logiciels des départements."""


# relais db upgrade -------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Base de données."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Applique les migrations (RELAIS_DATABASE_URL, SQLite embarqué par défaut)."""
    target = migrate_database(get_settings())
    click.echo(f"Base de données à jour : {target}")


# relais parcours sweep ---------------------------------------------------------------------


@main.group("parcours")
def parcours_group() -> None:
    """Règles du parcours qui dépendent du temps."""


@parcours_group.command("sweep")
def parcours_sweep() -> None:
    """Clôt les contrats d'engagement suspendus depuis 12 mois (idempotent, à planifier chaque jour).

    Reads apply the same rule, so a late or missed sweep lets nothing stale through; the
    sweep makes the closures visible to whoever does not read the contract.
    """
    settings = get_settings()
    migrate_database(settings)
    now = datetime.now(UTC)
    with open_database(settings) as database, database.session() as session:
        closed = cloturer_suspensions_echues(session, now=now)
        draft = AuditDraft(channel="cli", operation="parcours.sweep", reason=f"contrats_clotures:{closed}")
        append_event(session, draft, request_id=uuid.uuid4().hex, http_status=200, occurred_at=now)
        session.commit()
    click.echo(f"Contrats d'engagement clôturés : {closed}")


# relais serve ------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Adresse d'écoute.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port d'écoute.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Nombre de processus serveurs (RELAIS_WORKERS, 1 par défaut) ; plus d'un demande PostgreSQL.",
)
def serve(host: str, port: int, workers: int | None) -> None:
    """Sert les API (migre la base et prépare les clés d'abord)."""
    settings = get_settings()
    workers = workers or settings.workers
    if workers > 1 and settings.is_embedded:
        # Not WAL's doing: SQLite takes one writer at a time and every call writes its audit
        # event, so more processes would queue on the same lock (and each would run the
        # periodic jobs and count rate limits on its own) without serving more calls.
        fail(
            "plusieurs processus serveurs demandent PostgreSQL (RELAIS_DATABASE_URL) : la base "
            "SQLite embarquée n'accepte qu'une écriture à la fois et chaque appel écrit son événement "
            "d'audit. Relancez avec --workers 1, ou configurez PostgreSQL."
        )
    migrate_database(settings)
    # Fail here, with a clear message, rather than inside uvicorn's startup.
    load_keys(settings)
    # Imported late: the app pulls in connexion and every API module, which the other
    # commands do not need.
    import uvicorn

    from relais.core.ratelimit import describe_rate_limits

    if workers > 1:
        click.echo(_banner(host, port))
        click.echo(describe_rate_limits(settings.redis_url))
        click.echo(f"Processus serveurs : {workers} ; les tâches périodiques tournent dans un seul (verrou PostgreSQL)")
        # Each worker builds its own app from the same RELAIS_* environment, in its own process.
        # log_config=None: our structlog configuration (set by create_app) owns logging.
        uvicorn.run("api.app:create_served_app", factory=True, host=host, port=port, workers=workers, log_config=None)
        return
    from api.app import create_served_app

    app = create_served_app(settings)
    click.echo(_banner(host, port))
    click.echo(describe_rate_limits(settings.redis_url))
    uvicorn.run(app, host=host, port=port, log_config=None)


def _banner(host: str, port: int) -> str:
    """Where to call and where to read: each API serves its Swagger UI at ``<base path>/ui/``."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 (display only)
    base = f"http://{shown_host}:{port}"
    lines = [
        f"Relais écoute sur {base}",
        f"  Jeton d'accès    POST {base}{OAUTH2_ENDPOINT}",
        f"  API partenaires  {base}{API_PATH}",
        "Documentation interactive (Swagger UI) :",
        *(f"  {title:<44} {base}{path}/ui/" for _, title, path in served_documents()),
        "Identifiants et usagers de démonstration : relais demo",
    ]
    return "\n".join(lines)


# relais import -----------------------------------------------------------------------------


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
def import_command(file: Path) -> None:
    """Importe un fichier JSON Lines (organisations, clients, usagers) en une seule transaction."""
    # Imported here: jsonschema's format checkers take seconds to load, a cost that the
    # commands which do not validate a dataset should not pay.
    from relais.importer import DatasetError, count_lines, import_file

    settings = get_settings()
    migrate_database(settings)
    keys = load_keys(settings)
    total = count_lines(file)
    with (
        open_database(settings) as database,
        tqdm(total=total, disable=total <= PROGRESS_THRESHOLD, file=sys.stderr, unit=" lignes", leave=False) as bar,
    ):
        try:
            report = import_file(database, keys, file, progress=bar.update)
        except DatasetError as exc:
            bar.close()
            fail(f"fichier refusé, rien n'a été importé. {exc}", EXIT_DATASET_ERROR)
    click.echo(f"Import terminé ({file.name}) :")
    for line in report.summary_lines():
        click.echo(f"  {line}")


# relais demo -------------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Affiche les informations en un seul objet JSON.")
def demo(as_json: bool) -> None:
    """Charge le jeu de démonstration (idempotent) et affiche identifiants et exemples d'appels."""
    from relais.importer import DatasetError, import_records  # slow to import, see import_command

    settings = get_settings()
    migrate_database(settings)
    keys = load_keys(settings)
    records = build_demo_records()
    with open_database(settings) as database:
        try:
            report = import_records(database, keys, records)
        except DatasetError as exc:
            fail(f"jeu de démonstration refusé : {exc}", EXIT_DATASET_ERROR)
        # Diagnostics have no import record type: written through the domain rules, once.
        with database.transaction() as session:
            seed_demo_diagnostics(session, records, now=datetime.now(UTC))
    facts = demo_facts(settings.issuer, records)
    if as_json:
        # stdout carries the JSON object alone; the import summary goes to stderr.
        for line in report.summary_lines():
            click.echo(f"Jeu de démonstration — {line}", err=True)
        click.echo(json.dumps(facts, ensure_ascii=False, indent=2))
        return
    click.echo("Jeu de démonstration chargé (données fictives) :")
    for line in report.summary_lines():
        click.echo(f"  {line}")
    click.echo(_demo_text(facts))


def demo_facts(public_url: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    base = public_url.rstrip("/")
    return {
        "token_url": f"{base}{OAUTH2_ENDPOINT}",
        "api_base_url": f"{base}{API_PATH}",
        "clients": [
            {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "organisation": client.organisation,
                "scopes": list(client.scopes),
            }
            for client in DEMO_CLIENTS
        ],
        "usagers": demo_samples(records),
        "docs": [f"{base}{path}/ui/" for _, _, path in served_documents()],
    }


def _demo_text(facts: dict[str, Any]) -> str:
    lines = [
        "",
        f"Jeton d'accès : POST {facts['token_url']}",
        f"API partenaires : {facts['api_base_url']}",
        "",
        "Clients de démonstration (secrets publics, à ne jamais réutiliser ailleurs) :",
    ]
    for client, demo_client in zip(facts["clients"], DEMO_CLIENTS, strict=True):
        lines += [
            f"  {client['client_id']}  ({demo_client.description})",
            f"    secret : {client['client_secret']}",
            f"    scopes : {' '.join(client['scopes'])}",
        ]
    lines += ["", "Usagers de démonstration (fictifs) :"]
    cases = (
        "inscrit, visible des trois API pour demo-cd33",
        "Corse-du-Sud : R002 pour demo-cd33, S001 pour demo-cd2a",
        "NIR en double : S003 « Plusieurs usagers » en recherche par NIR",
    )
    for usager, case in zip(facts["usagers"], cases, strict=True):
        lines.append(
            f"  n° France Travail {usager['numeroFranceTravail']}  NIR {usager['nir']}  "
            f"né(e) le {usager['dateNaissance']}  ({usager['organisation']} ; {case})"
        )
    lines += ["", "Documentation (Swagger UI) :", *(f"  {url}" for url in facts["docs"]), ""]
    lines += _curl_walkthrough(facts)
    return "\n".join(lines)


def _curl_walkthrough(facts: dict[str, Any]) -> list[str]:
    client = facts["clients"][0]
    usager = facts["usagers"][0]
    base = facts["api_base_url"].removesuffix(API_PATH)
    agent = " ".join(f"-H '{name}: {value}'" for name, value in DEMO_AGENT.items())
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{}\"])'"
    return [
        "Premiers appels (bash) :",
        "",
        "# 1. Jeton d'accès (client credentials)",
        f"TOKEN=$(curl -s -X POST '{facts['token_url']}' \\",
        f"  -d grant_type=client_credentials -d client_id={client['client_id']} \\",
        f"  -d client_secret={client['client_secret']} \\",
        f"  --data-urlencode 'scope={' '.join(FOUNDATION_SCOPES)}' \\",
        f"  | {extract.format('access_token')})",
        "",
        "# 2. Rechercher l'usager par numéro France Travail : la réponse S001 porte le jeton usager",
        f"JETON=$(curl -s -X POST '{base}{RECHERCHE_PAR_NUMERO_PATH}' \\",
        f"  -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' {agent} \\",
        f'  -d \'{{"numeroFranceTravail": "{usager["numeroFranceTravail"]}"}}\' \\',
        f"  | {extract.format('jetonUsager')})",
        "",
        "# 3. Informations administratives, avec le jeton usager",
        f"curl -s '{base}{INFORMATIONS_PATH}' \\",
        f'  -H "Authorization: Bearer $TOKEN" -H "ft-jeton-usager: $JETON" {agent}',
        "",
        "# 4. Statut usager (m_contrat)",
        f"curl -s '{base}{CONTRAT_PATH}' \\",
        f'  -H "Authorization: Bearer $TOKEN" -H "ft-jeton-usager: $JETON" {agent}',
    ]


# relais clients create ---------------------------------------------------------------------


@main.group("clients")
def clients_group() -> None:
    """Applications clientes (client credentials)."""


@clients_group.command("create")
@click.option("--client-id", required=True, help="Identifiant de l'application.")
@click.option("--organisation", required=True, help="Code de l'organisation (ex. CD33).")
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope autorisé (option répétable).")
@click.option("--rate-limit", type=click.IntRange(min=1), default=None, help="Appels par seconde et par API.")
@click.option("--national", is_flag=True, help="Alimentation (producteur) pour les usagers de tous les territoires.")
def clients_create(
    client_id: str, organisation: str, scopes: tuple[str, ...], rate_limit: int | None, national: bool
) -> None:
    """Crée une application cliente et affiche son secret, une seule fois."""
    settings = get_settings()
    migrate_database(settings)
    # « --scope 'a b' » is accepted too, as scopes are space-separated in OAuth requests.
    scope_list = [scope for value in scopes for scope in value.split()]
    with open_database(settings) as database:
        try:
            with database.transaction() as session:
                client, secret = create_client(
                    session,
                    client_id=client_id,
                    organisation_code=organisation,
                    scopes=scope_list,
                    rate_limit_per_second=rate_limit,
                    national=national,
                )
        except ClientRegistryError as exc:
            fail(str(exc))
    click.echo(f"Client « {client.client_id} » créé pour l'organisation {organisation}.")
    click.echo(f"  scopes : {' '.join(client.scopes)}")
    click.echo(f"  secret : {secret}")
    click.echo(
        "Conservez ce secret maintenant : il ne sera plus jamais affiché (Relais n'en garde qu'une empreinte).",
        err=True,
    )


# relais keys rotate ------------------------------------------------------------------------


@main.group("keys")
def keys_group() -> None:
    """Clés de signature et de chiffrement."""


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Crée une nouvelle clé de signature des jetons d'accès ; l'ancienne reste publiée 30 jours."""
    settings = get_settings()
    # Creates the development key set when allowed and missing, so that there is one to rotate.
    load_keys(settings)
    try:
        kid = rotate_signing_key(settings.resolved_keys_file, datetime.now(UTC))
    except KeySetError as exc:
        fail(str(exc))
    click.echo(f"Nouvelle clé de signature : {kid}")
    click.echo(
        "Les serveurs en marche signent avec elle d'ici quelques secondes, sans redémarrage, "
        "s'ils lisent ce même fichier de clés."
    )


# Command groups of their own modules -------------------------------------------------------

for group in (audit_group, habilitations_group, connecteurs_group, fichiers_group, proconnect_group, admin_group):
    main.add_command(group)
