"""``relais proconnect``: the operator's side of the agent login (SIRET directory, configuration check).

An agent's first ProConnect login is matched by e-mail among the agents of the organisation
that owns the SIRET ProConnect sends: the directory says which organisation that is. Every
change is audited on the ``cli`` channel.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import click
from sqlmodel import Session

from audit.journal import append_event
from habilitations import login, sirets
from habilitations.refusals import HabilitationRefused, LoginRefused
from relais.cli.support import fail, migrate_database, open_database
from relais.core.auditing import AuditDraft


@click.group("proconnect")
def proconnect_group() -> None:
    """Connexion des agents par ProConnect : annuaire des SIRET, vérification de la configuration."""


@proconnect_group.group("siret")
def siret_group() -> None:
    """SIRET des établissements de chaque organisation (rattachement à la première connexion)."""


def _audit(session: Session, operation: str, organisation: str | None, siret: str, now: datetime) -> None:
    # A SIRET identifies an establishment, not a person: it may appear in the audit trail.
    draft = AuditDraft(
        channel="cli",
        operation=operation,
        organisation=organisation,
        target=f"siret:{siret}",
    )
    append_event(session, draft, request_id=f"cli-{uuid.uuid4().hex}", http_status=200, occurred_at=now)


@siret_group.command("add")
@click.argument("organisation")
@click.argument("siret", nargs=-1, required=True)
def siret_add(organisation: str, siret: tuple[str, ...]) -> None:
    """Rattache un ou plusieurs SIRET à l'ORGANISATION (code, par exemple CD33). Idempotent."""
    from relais.core.config import get_settings

    settings = get_settings()
    migrate_database(settings)
    now = datetime.now(UTC)
    added = 0
    with open_database(settings) as database, database.session() as session:
        for value in siret:
            try:
                if sirets.add_siret(session, organisation, value, now):
                    _audit(session, "proconnect.siret.ajouter", organisation, value, now)
                    added += 1
            except HabilitationRefused as refused:
                session.rollback()
                fail(f"{value} : {refused.message}")
        session.commit()
    click.echo(f"SIRET rattachés à {organisation} : {added} ajouté(s), {len(siret) - added} déjà présent(s)")


@siret_group.command("remove")
@click.argument("siret")
def siret_remove(siret: str) -> None:
    """Détache un SIRET de son organisation."""
    from relais.core.config import get_settings

    settings = get_settings()
    migrate_database(settings)
    now = datetime.now(UTC)
    with open_database(settings) as database, database.session() as session:
        owner = dict(sirets.directory(session)).get(siret)
        if owner is None or not sirets.remove_siret(session, siret):
            fail(f"SIRET inconnu : {siret}")
        _audit(session, "proconnect.siret.retirer", owner, siret, now)
        session.commit()
    click.echo(f"SIRET {siret} détaché de {owner}")


@siret_group.command("list")
@click.option("--organisation", default=None, help="Code de l'organisation (toutes par défaut).")
def siret_list(organisation: str | None) -> None:
    """Liste les SIRET et leur organisation."""
    from relais.core.config import get_settings

    settings = get_settings()
    migrate_database(settings)
    with open_database(settings) as database, database.session() as session:
        for siret, code in sirets.directory(session, organisation):
            click.echo(f"{siret}\t{code}")


@proconnect_group.command("check")
def check_command() -> None:
    """Vérifie la configuration : lit la découverte et les clés publiques de ProConnect."""
    from relais.core.config import get_settings

    settings = get_settings()
    if not login.is_configured(settings):
        fail(
            "connexion ProConnect non configurée : RELAIS_PROCONNECT_ISSUER, RELAIS_PROCONNECT_CLIENT_ID, "
            "RELAIS_PROCONNECT_CLIENT_SECRET et RELAIS_PROCONNECT_REDIRECT_URI sont requis"
        )

    async def fetch() -> tuple[login.Provider, int]:
        async with login.http_client(settings) as client:
            provider = await login.discover(client, settings)
            keys = await login.fetch_keys(client, provider)
            return provider, len(keys.keys)

    try:
        provider, count = asyncio.run(fetch())
    except LoginRefused as refusal:
        fail(f"{login.MESSAGE_PROVIDER_DOWN} ({refusal.reason})")
    click.echo(f"Émetteur : {provider.issuer}")
    click.echo(f"Autorisation : {provider.authorization_endpoint}")
    click.echo(f"Clés de signature publiées : {count}")
    click.echo(f"Niveaux acceptés (acr) : {', '.join(settings.proconnect_accepted_acr)}")
    click.echo(f"URI de retour : {settings.proconnect_redirect_uri}")
