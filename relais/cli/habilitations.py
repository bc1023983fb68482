"""``relais habilitations``: the operator's commands for agents, grants and their lifecycle.

The group is shared: the admin commands (``relais.cli.habilitations_admin``) are added to it. The
command line acts as the hub operator (``Principal.command_line()``) and every change is
audited on the ``cli`` channel, or ``lifecycle`` for what the sweep decides by itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click

from audit.journal import JournalRecorder
from habilitations import inactivity
from habilitations.campaigns import expire_due_campaigns
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from habilitations.transitional import create_transitional_identity
from relais.cli.support import fail, migrate_database, open_database
from relais.core.auditing import AuditDraft


@click.group("habilitations")
def habilitations_group() -> None:
    """Habilitations des agents : cycle de vie, inactivité, identités transitoires."""


@habilitations_group.command("sweep")
def sweep_command() -> None:
    """Suspend les agents inactifs depuis deux mois calendaires, avertit à J-15 et J-7, échoit
    les campagnes de revue dont la date limite est passée (idempotent, à planifier chaque jour)."""
    from relais.core.config import get_settings

    settings = get_settings()
    migrate_database(settings)
    now = datetime.now(UTC)
    # One id for the run: its suspensions, its campaigns' revocations and its own event.
    recorder, request_id = JournalRecorder(), f"lifecycle-{uuid.uuid4().hex}"
    with open_database(settings) as database, database.transaction() as session:
        report = inactivity.sweep(session, now, recorder=recorder, request_id=request_id)
        expired = expire_due_campaigns(session, now, recorder=recorder, request_id=request_id)
        details = {**report.as_dict(), "campagnes_echues": expired}
        draft = AuditDraft(channel="lifecycle", operation="habilitations.sweep", details=details)
        recorder.record(session, draft, request_id=request_id, http_status=200, occurred_at=now)
    click.echo(f"Agents suspendus pour inactivité : {len(report.suspended)}")
    click.echo(f"Avertissements d'inactivité : {len(report.warned)}")
    click.echo(f"Campagnes de revue échues : {expired}")


@habilitations_group.command("transition")
@click.argument("client_id")
def transition_command(client_id: str) -> None:
    """Crée l'identité transitoire « * » d'un client existant (migration vers les habilitations).

    Its calls whose pa-identifiant-agent names no agent are made under it until the first
    person of the organisation is habilitated. The migration does this for every client that
    existed before; this command is for one registered afterwards by the same route.
    """
    from relais.core.config import get_settings

    settings = get_settings()
    migrate_database(settings)
    now = datetime.now(UTC)
    with open_database(settings) as database, database.transaction() as session:
        try:
            grant = create_transitional_identity(
                session,
                Principal.command_line(),
                client_id=client_id,
                now=now,
                recorder=JournalRecorder(),
                request_id=f"cli-{uuid.uuid4().hex}",
            )
        except TransitionRefused as refused:
            fail(refused.message)
        grant_id = grant.id
    click.echo(f"Identité transitoire créée pour le client {client_id} (habilitation {grant_id})")
