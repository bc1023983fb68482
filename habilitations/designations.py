"""Roles: designating an RGC (titular or deputy), an RSSI, an integrator, a CSSI or an operator, and ending it.

A role is an administrative power, never a data access. The convention (Annexe 1) wants the
RGC to be a civil servant or contract agent of the organisation, with the date of their
commitment act, one titular at a time; and an RGC's departure, change of function or absence
of more than two months reported to France Travail's CSSI within 8 days (an outbox notice).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlmodel import Session

from habilitations import lookups
from habilitations.checks import check_code, forbidden, require_eligible
from habilitations.models import (
    ACTIF,
    CSSI,
    HUMAIN,
    INTEGRATEUR,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    ROLES,
    RSSI,
    Agent,
    Designation,
)
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from habilitations.transitions import record
from relais.core.auditing import AuditRecorder
from relais.core.french_dates import local_date
from relais.core.outbox import enqueue
from relais.core.refusals import RefusalKind

CSSI_NOTICE_DAYS = 8
RGC_NOTICE_REASONS = ("depart", "changement_fonction", "absence_prolongee")
TOPIC_RGC_NOTICE = "habilitations.rgc.signalement_cssi"


def designate(
    session: Session,
    actor: Principal,
    *,
    organisation_id: int,
    agent_id: int,
    role: str,
    acte_engagement_le: date | None = None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Designation:
    """Give a role. RGC titular/deputy: a civil servant or contract agent of the organisation,
    with the date of their commitment act, one titular at a time (titular: operator or CSSI;
    deputy: also the organisation's titular RGC). RSSI, integrator: operator, CSSI or titular RGC.
    CSSI: an agent of a France Travail organisation, operator only. Operator: operator only."""
    if role not in ROLES:
        raise TransitionRefused(RefusalKind.INVALID, "role_inconnu", "Rôle inconnu")
    organisation = lookups.organisation(session, organisation_id)
    agent = lookups.locked_agent(session, agent_id)
    if agent.organisation_id != organisation_id:
        raise TransitionRefused(
            RefusalKind.INVALID, "agent_hors_organisation", "L'agent n'appartient pas à cette organisation"
        )
    if agent.etat != ACTIF or agent.type != HUMAIN:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "agent_inactif", "Seul un agent actif, une personne, peut recevoir un rôle"
        )
    allowed = actor.is_operator
    if role in (RGC_TITULAIRE,):
        allowed = allowed or actor.is_cssi
    elif role in (RGC_SUPPLEANT, RSSI, INTEGRATEUR):
        allowed = allowed or actor.is_cssi or actor.has_role(RGC_TITULAIRE, organisation_id)
    if not allowed:
        raise forbidden()
    if actor.agent_id is not None and actor.agent_id == agent.id:
        raise TransitionRefused(
            RefusalKind.FORBIDDEN, "separation_des_roles", "Un agent ne peut pas se désigner lui-même"
        )
    require_eligible(role, agent.statut_emploi)
    if role in (RGC_TITULAIRE, RGC_SUPPLEANT):
        if acte_engagement_le is None:
            raise TransitionRefused(
                RefusalKind.INVALID,
                "acte_engagement_requis",
                "La date de l'acte d'engagement du RGC est obligatoire",
            )
        if acte_engagement_le > local_date(now):
            raise TransitionRefused(
                RefusalKind.INVALID, "acte_engagement_futur", "La date de l'acte d'engagement est dans le futur"
            )
    if role == CSSI and organisation.type != "FT":
        raise TransitionRefused(
            RefusalKind.INVALID, "cssi_hors_france_travail", "Le CSSI est un agent de France Travail"
        )
    current = lookups.current_designations(session, organisation_id, now)
    if any(d.agent_id == agent.id and d.role == role for d in current):
        raise TransitionRefused(RefusalKind.CONFLICT, "designation_existante", "L'agent détient déjà ce rôle")
    if role == RGC_TITULAIRE and any(d.role == RGC_TITULAIRE for d in current):
        raise TransitionRefused(
            RefusalKind.CONFLICT,
            "titulaire_existant",
            "L'organisation a déjà un RGC titulaire : mettez fin à sa désignation",
        )
    assert agent.id is not None
    designation = Designation(
        organisation_id=organisation_id, agent_id=agent.id, role=role, acte_engagement_le=acte_engagement_le, debut=now
    )
    session.add(designation)
    session.flush()
    record(
        session,
        actor,
        "habilitations.designation.designer",
        agent=agent,
        organisation=organisation,
        now=now,
        target=f"designation:{designation.id}",
        details={"role": role, "apres": "en_cours"},
        recorder=recorder,
        request_id=request_id,
    )
    return designation


def end_designation(
    session: Session,
    actor: Principal,
    designation_id: int,
    *,
    motif: str,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Designation:
    """End a role. For an RGC leaving, changing function or absent (``depart``,
    ``changement_fonction``, ``absence_prolongee``) the CSSI notice is raised (8 days)."""
    designation = lookups.locked(session, Designation, designation_id, "designation_inconnue", "Désignation inconnue")
    check_code(motif)
    if designation.role in (RGC_SUPPLEANT, RSSI, INTEGRATEUR):
        allowed = actor.is_operator or actor.is_cssi or actor.has_role(RGC_TITULAIRE, designation.organisation_id)
    elif designation.role == RGC_TITULAIRE:
        allowed = actor.is_operator or actor.is_cssi or actor.agent_id == designation.agent_id
    else:
        allowed = actor.is_operator
    if not allowed:
        raise forbidden()
    if designation.fin is not None and lookups.utc(designation.fin) <= now:
        raise TransitionRefused(RefusalKind.CONFLICT, "designation_terminee", "Cette désignation est déjà terminée")
    return close_designation(session, actor, designation, motif, now, recorder=recorder, request_id=request_id)


def close_designation(
    session: Session,
    actor: Principal,
    designation: Designation,
    motif: str,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
) -> Designation:
    """End a designation whose ending was allowed by the caller (or implied by the agent's revocation)."""
    designation.fin = now
    designation.motif_fin = motif
    session.add(designation)
    session.flush()
    agent = session.get(Agent, designation.agent_id)
    organisation = lookups.organisation(session, designation.organisation_id)
    record(
        session,
        actor,
        "habilitations.designation.terminer",
        agent=agent,
        organisation=organisation,
        now=now,
        target=f"designation:{designation.id}",
        details={"role": designation.role, "avant": "en_cours", "apres": "terminee", "motif": motif},
        recorder=recorder,
        request_id=request_id,
    )
    if designation.role in (RGC_TITULAIRE, RGC_SUPPLEANT) and motif in RGC_NOTICE_REASONS and agent is not None:
        notify_cssi(session, designation, motif, now)
    return designation


def notify_cssi_of_absence(session: Session, agent: Agent, motif: str, now: datetime) -> None:
    """An RGC suspended for inactivity has been absent for two months: the CSSI must know."""
    for designation in lookups.designations_of(session, agent, now):
        if designation.role in (RGC_TITULAIRE, RGC_SUPPLEANT):
            notify_cssi(session, designation, motif, now)


def notify_cssi(session: Session, designation: Designation, motif: str, now: datetime) -> None:
    """The notice to France Travail's CSSI about an RGC (once per designation and reason)."""
    organisation = lookups.organisation(session, designation.organisation_id)
    deadline = local_date(now) + timedelta(days=CSSI_NOTICE_DAYS)
    enqueue(
        session,
        topic=TOPIC_RGC_NOTICE,
        recipient="cssi",
        payload={
            "organisation": organisation.code,
            "designation_id": designation.id,
            "role": designation.role,
            "motif": motif,
            "constate_le": local_date(now).isoformat(),
            "a_signaler_avant": deadline.isoformat(),
        },
        idempotency_key=f"rgc-notice:{designation.id}:{motif}",
        now=now,
        organisation_id=organisation.id,
    )


def current_rgcs(session: Session, organisation_id: int, now: datetime) -> list[Designation]:
    """The organisation's RGC designations (titular and deputies) in force."""
    return [
        d
        for d in lookups.current_designations(session, organisation_id, now)
        if d.role in (RGC_TITULAIRE, RGC_SUPPLEANT)
    ]
