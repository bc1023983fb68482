"""An agent's state: suspended for inactivity, blocked, revoked, reactivated, deleted.

Each move is one audited transition. Revoking or deleting an agent also revokes their grants
and ends their designations, each a transition of its own; so revoking, blocking or deleting
a role holder (RGC, RSSI, CSSI, operator) is the CSSI's or the operator's, never an RGC's.
A security measure (a block, or a revocation by the CSSI) holds until the CSSI or the
operator lifts it: the organisation's RGC can neither lift it nor get round it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session, col, select

from habilitations import lookups
from habilitations.checks import (
    check_code,
    check_text,
    forbidden,
    require_custodian,
    require_manager,
    require_not_deleted,
    require_security,
    require_security_for_role_holder,
    require_security_if_held,
)
from habilitations.designations import close_designation, notify_cssi_of_absence
from habilitations.models import (
    ACTIF,
    BLOQUE,
    REVOQUE,
    SUPPRIME,
    SUSPENDU_INACTIVITE,
    Agent,
    Designation,
    Habilitation,
)
from habilitations.overrides import notify_rgc
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from habilitations.transitions import SYSTEM_ACTOR, move_agent, move_grant
from relais.core.auditing import AuditRecorder
from relais.core.refusals import RefusalKind

# ``etat_motif`` of an agent revoked by the CSSI as a security measure.
SECURITY_HOLD_PREFIX = "securite:"


def suspend_for_inactivity(
    session: Session,
    agent_id: int,
    *,
    due: date,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
    actor: Principal = SYSTEM_ACTOR,
) -> Agent:
    """Two calendar months without activity: the agent is refused until an RGC reactivates them.

    An RGC suspended so has been absent two months: the CSSI notice is raised.
    """
    agent = lookups.locked_agent(session, agent_id)
    if agent.etat != ACTIF:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "etat_incompatible", "Seul un agent actif peut être suspendu pour inactivité"
        )
    agent = move_agent(
        session,
        actor,
        agent,
        SUSPENDU_INACTIVITE,
        "inactivite",
        "habilitations.agent.suspendre",
        now,
        extra={"echeance": due.isoformat()},
        recorder=recorder,
        request_id=request_id,
    )
    notify_cssi_of_absence(session, agent, "absence_prolongee", now)
    return agent


def block_agent(
    session: Session,
    actor: Principal,
    agent_id: int,
    *,
    motif: str,
    commentaire: str | None = None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """Security override (CSSI or hub operator): blocked pending review, with a reason code.

    The organisation's RGC is notified through the outbox, and the override is flagged for
    the next review campaign (``habilitations.overrides``).
    """
    require_security(actor)
    check_code(motif)
    check_text("commentaire", commentaire, 255)
    agent = lookups.locked_agent(session, agent_id)
    if agent.etat not in (ACTIF, SUSPENDU_INACTIVITE):
        raise TransitionRefused(
            RefusalKind.CONFLICT, "etat_incompatible", "Seul un agent actif ou suspendu peut être bloqué"
        )
    agent = move_agent(
        session,
        actor,
        agent,
        BLOQUE,
        motif,
        "habilitations.agent.bloquer",
        now,
        extra={"override": True},
        etat_motif=commentaire or motif,
        recorder=recorder,
        request_id=request_id,
    )
    organisation = lookups.organisation(session, agent.organisation_id)
    notify_rgc(
        session,
        organisation,
        {"agent_id": agent.id, "motif": motif, "organisation": organisation.code, "le": now.isoformat()},
        idempotency_key=f"blocage:agent:{agent.id}:{agent.version}",
        now=now,
    )
    return agent


def revoke_agent(
    session: Session,
    actor: Principal,
    agent_id: int,
    *,
    motif: str,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """Departure or change of function (``motif`` e.g. ``depart``, ``changement_fonction``).

    Its active grants are revoked and its designations ended too, each its own transition
    with its own audit event; an RGC's departure raises the CSSI notice.
    """
    agent = lookups.locked_agent(session, agent_id)
    if not (actor.is_operator or actor.is_rgc_of(agent.organisation_id) or actor.is_cssi):
        raise forbidden()
    check_code(motif)
    if agent.etat in (REVOQUE, SUPPRIME):
        raise TransitionRefused(RefusalKind.CONFLICT, "etat_incompatible", "Cet agent est déjà révoqué ou supprimé")
    require_security_if_held(actor, agent.etat)
    require_security_for_role_holder(actor, lookups.designations_of(session, agent, now))
    # A revocation by the CSSI (not the organisation's own RGC) is a security measure too:
    # only the CSSI or the operator may undo it.
    held = actor.is_cssi and not actor.is_operator and not actor.is_rgc_of(agent.organisation_id)
    agent = move_agent(
        session,
        actor,
        agent,
        REVOQUE,
        motif,
        "habilitations.agent.revoquer",
        now,
        etat_motif=f"{SECURITY_HOLD_PREFIX}{motif}" if held else None,
        recorder=recorder,
        request_id=request_id,
    )
    _close_everything(session, actor, agent, motif, now, recorder=recorder, request_id=request_id)
    return agent


def reactivate_agent(
    session: Session,
    actor: Principal,
    agent_id: int,
    *,
    motif: str = "reactivation",
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """Back to active: the RGC for an inactivity suspension or a revocation (the agent has no
    grant left after a revocation); only the CSSI or the operator lift a security block."""
    agent = lookups.locked_agent(session, agent_id)
    check_code(motif)
    if agent.etat == BLOQUE or is_security_revocation(agent):
        require_security(actor)
    elif agent.etat in (SUSPENDU_INACTIVITE, REVOQUE):
        require_manager(actor, agent.organisation_id)
    else:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "etat_incompatible", "Cet agent ne peut pas être réactivé depuis son état"
        )
    if actor.agent_id is not None and actor.agent_id == agent.id:
        raise TransitionRefused(
            RefusalKind.FORBIDDEN, "separation_des_roles", "Un agent ne peut pas se réactiver lui-même"
        )
    # Reactivation restarts the inactivity clock: without it the next request would suspend again.
    agent.derniere_activite = now
    return move_agent(
        session,
        actor,
        agent,
        ACTIF,
        motif,
        "habilitations.agent.reactiver",
        now,
        recorder=recorder,
        request_id=request_id,
    )


def delete_agent(
    session: Session,
    actor: Principal,
    agent_id: int,
    *,
    motif: str = "suppression",
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """The account is closed for good: its ProConnect link and e-mail are erased, the row stays
    as the target of past audit events."""
    agent = lookups.locked_agent(session, agent_id)
    require_custodian(actor, agent.organisation_id, lookups.designations_of(session, agent, now))
    check_code(motif)
    require_not_deleted(agent)
    require_security_if_held(actor, agent.etat)
    if is_security_revocation(agent):
        require_security(actor)
    agent.sub = None
    agent.email = None
    agent = move_agent(
        session,
        actor,
        agent,
        SUPPRIME,
        motif,
        "habilitations.agent.supprimer",
        now,
        recorder=recorder,
        request_id=request_id,
    )
    _close_everything(session, actor, agent, motif, now, recorder=recorder, request_id=request_id)
    return agent


def is_security_revocation(agent: Agent) -> bool:
    return agent.etat == REVOQUE and (agent.etat_motif or "").startswith(SECURITY_HOLD_PREFIX)


def _close_everything(
    session: Session,
    actor: Principal,
    agent: Agent,
    motif: str,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
) -> None:
    """Revoke the agent's grants in force and end their designations, each audited."""
    organisation = lookups.organisation(session, agent.organisation_id)
    grants = session.exec(
        select(Habilitation)
        .where(Habilitation.agent_id == agent.id, col(Habilitation.etat).in_((ACTIF, BLOQUE)))
        .with_for_update()
    ).all()
    for grant in grants:
        move_grant(
            session,
            actor,
            grant,
            agent,
            organisation,
            REVOQUE,
            motif,
            "habilitations.habilitation.revoquer",
            now,
            recorder=recorder,
            request_id=request_id,
        )
    designations = session.exec(select(Designation).where(Designation.agent_id == agent.id).with_for_update()).all()
    for designation in designations:
        if designation.fin is None or lookups.utc(designation.fin) > now:
            close_designation(session, actor, designation, motif, now, recorder=recorder, request_id=request_id)
