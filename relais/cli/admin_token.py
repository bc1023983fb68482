"""``relais admin token --agent ID``: an admin token for an operator's script, from the shell.

The token is the one a ProConnect login issues (``relais.core.admin_tokens``): same audience,
same lifetime, re-checked on every call, so it opens exactly what the agent's roles open and
stops working when the agent is suspended or their designation ends. It is issued to active
human agents only, as the login does; an agent past two months without activity is suspended
there and then and refused, as at login. Issuing it does not count as the agent's activity
(a script's token must not keep an absent person's account alive). Every request, issued or
refused, is one audit event on the ``cli`` channel, with the reason of a refusal.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click

from audit.journal import JournalRecorder, append_event
from habilitations.agent_states import suspend_for_inactivity
from habilitations.inactivity import inactivity_due_date, is_overdue
from habilitations.models import ACTIF, HUMAIN, Agent
from relais.cli.support import fail, load_keys, migrate_database, open_database
from relais.core.admin_tokens import ADMIN_CLIENT_ID, issue_admin_token
from relais.core.auditing import AuditDraft
from relais.core.config import get_settings
from relais.core.tables import Organisation

OPERATION = "admin.jeton.cli"
# How the audit trail and the handlers' ``acr`` say the token came from the shell, not ProConnect.
ACR = "relais-cli"
REFUSALS = {
    "agent_inconnu": "agent inconnu",
    "agent_non_humain": "cet agent est une identité technique : aucun jeton d'administration",
    "agent_inactivite": "agent suspendu ce jour pour deux mois sans activité : un RGC doit le réactiver",
}


@click.group("admin")
def admin_group() -> None:
    """Accès d'administration pour les scripts d'exploitation."""


@admin_group.command("token")
@click.option("--agent", "agent_id", type=int, required=True, help="Identifiant numérique de l'agent dans Relais.")
def token_command(agent_id: int) -> None:
    """Affiche un jeton d'administration pour un agent actif (API d'administration, en-tête Bearer)."""
    settings = get_settings()
    keys = load_keys(settings)
    migrate_database(settings)
    now = datetime.now(UTC)
    request_id = f"cli-{uuid.uuid4().hex}"
    with open_database(settings) as database, database.session() as session:
        agent = session.get(Agent, agent_id)
        organisation = session.get(Organisation, agent.organisation_id) if agent is not None else None
        reason = _refusal(agent, organisation, now)
        if reason == "agent_inactivite" and agent is not None:
            # A late sweep lets no one through: suspended now (its own audited transition), refused.
            suspend_for_inactivity(
                session,
                agent_id,
                due=inactivity_due_date(agent),
                now=now,
                recorder=JournalRecorder(),
                request_id=request_id,
            )
        draft = AuditDraft(
            channel="cli",
            operation=OPERATION,
            client_id=ADMIN_CLIENT_ID,
            organisation=organisation.code if organisation is not None else None,
            agent_id=agent_id if agent is not None else None,
            acr=ACR,
            target=f"agent:{agent_id}",
            reason=reason,
        )
        append_event(session, draft, request_id=request_id, http_status=403 if reason else 200, occurred_at=now)
        session.commit()
        if reason is not None or organisation is None:
            fail(f"jeton refusé pour l'agent {agent_id} : {_message(reason, agent)}")
        token = issue_admin_token(
            keys, settings, agent_id=agent_id, organisation=organisation.code, acr=ACR, auth_time=now, now=now
        )
    click.echo(token)


def _refusal(agent: Agent | None, organisation: Organisation | None, now: datetime) -> str | None:
    if agent is None or organisation is None:
        return "agent_inconnu"
    if agent.type != HUMAIN:
        return "agent_non_humain"
    if agent.etat != ACTIF:
        return f"agent_{agent.etat}"
    if is_overdue(agent, now):
        return "agent_inactivite"
    return None


def _message(reason: str | None, agent: Agent | None) -> str:
    if reason in REFUSALS:
        return REFUSALS[reason]
    state = (agent.etat if agent is not None else "").replace("_", " ")
    return f"le compte n'est pas actif (état : {state})"
