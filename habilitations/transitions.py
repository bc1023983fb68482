"""How a state change is written: the row moves and exactly one audit event says so.

The event is written through the ``AuditRecorder`` the caller passes (the audit domain's, for
the admin API, the CLI, the import and the sweep), in the caller's session: it commits with
the change or not at all. It carries the caller's ``request_id`` (the admin or partner
request's own, or one the command line or the sweep made up), so that a transition and the
call that caused it are found together. ``details`` hold states, reason codes and field
names, never personal data.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from habilitations import lookups
from habilitations.models import ACTIF, Agent, Habilitation
from habilitations.roles import Principal
from relais.core.auditing import AuditDraft, AuditRecorder
from relais.core.tables import Organisation

# The automatic actor of the inactivity sweep, the request-time check and the campaigns'
# deadline: its changes are audited on the ``lifecycle`` channel.
SYSTEM_ACTOR = Principal(
    agent_id=None, organisation_id=None, organisation=None, roles=frozenset(), libelle="relais:lifecycle"
)


def channel(actor: Principal) -> str:
    if actor.libelle == SYSTEM_ACTOR.libelle:
        return "lifecycle"
    if actor.is_command_line:
        return "cli"
    return "admin-api"


def record(
    session: Session,
    actor: Principal,
    operation: str,
    *,
    agent: Agent | None,
    organisation: Organisation,
    now: datetime,
    details: dict[str, Any],
    recorder: AuditRecorder,
    request_id: str,
    grant: Habilitation | None = None,
    target: str | None = None,
) -> None:
    """The one audit event of a transition (target: the grant, else the agent, unless given)."""
    if target is None:
        target = f"habilitation:{grant.id}" if grant is not None else f"agent:{agent.id if agent else ''}"
    draft = AuditDraft(
        channel=channel(actor),
        operation=operation,
        organisation=organisation.code,
        agent_id=actor.agent_id,
        habilitation_id=grant.id if grant is not None else None,
        target=target,
        details={"acteur": actor.label, **details},
    )
    recorder.record(session, draft, request_id=request_id, http_status=200, occurred_at=now)
    session.flush()


def touch(session: Session, row: Agent | Habilitation, now: datetime) -> None:
    row.updated_at = now
    row.version += 1
    session.add(row)
    session.flush()


def move_agent(
    session: Session,
    actor: Principal,
    agent: Agent,
    etat: str,
    motif: str,
    operation: str,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
    extra: dict[str, Any] | None = None,
    etat_motif: str | None = None,
) -> Agent:
    """Move the agent to ``etat`` for ``motif`` (a code), audited as ``operation``."""
    before = agent.etat
    agent.etat = etat
    agent.etat_motif = (etat_motif or motif)[:255]
    agent.etat_depuis = now
    touch(session, agent, now)
    record(
        session,
        actor,
        operation,
        agent=agent,
        organisation=lookups.organisation(session, agent.organisation_id),
        now=now,
        details={"avant": before, "apres": etat, "motif": motif, **(extra or {})},
        recorder=recorder,
        request_id=request_id,
    )
    return agent


def move_grant(
    session: Session,
    actor: Principal,
    grant: Habilitation,
    agent: Agent,
    organisation: Organisation,
    etat: str,
    motif: str,
    operation: str,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
    extra: dict[str, Any] | None = None,
) -> Habilitation:
    """Move the grant to ``etat`` for ``motif`` (a code), audited as ``operation``."""
    before = grant.etat
    grant.etat = etat
    grant.etat_motif = motif[:255]
    grant.etat_depuis = now
    touch(session, grant, now)
    record(
        session,
        actor,
        operation,
        agent=agent,
        organisation=organisation,
        grant=grant,
        now=now,
        details={"avant": before, "apres": etat, "motif": motif, **(extra or {})},
        recorder=recorder,
        request_id=request_id,
    )
    return grant


def new_grant(
    session: Session,
    actor: Principal,
    agent: Agent,
    organisation: Organisation,
    *,
    api: str,
    scopes: list[str],
    finalite: str,
    justification: str | None,
    date_fin: date | None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """An active grant, once its rules were checked by the caller."""
    assert agent.id is not None
    grant = Habilitation(
        agent_id=agent.id,
        api=api,
        scopes=scopes,
        finalite=finalite,
        justification=justification,
        accordee_par=actor.agent_id,
        accordee_par_libelle=actor.label,
        accordee_le=now,
        date_fin=date_fin,
        etat=ACTIF,
        etat_depuis=now,
        updated_at=now,
    )
    session.add(grant)
    session.flush()
    record(
        session,
        actor,
        "habilitations.habilitation.accorder",
        agent=agent,
        organisation=organisation,
        grant=grant,
        now=now,
        details={"apres": ACTIF, "api": api, "scopes": scopes, "date_fin": date_fin.isoformat() if date_fin else None},
        recorder=recorder,
        request_id=request_id,
    )
    return grant
