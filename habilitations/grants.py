"""Habilitations (grants): granting, extending or shortening, reducing, revoking, blocking.

A grant gives an active agent scopes of one API, within the organisation's subscription (and,
for a technical identity, its client's scopes). It is given, extended or shortened by the
RGC of the agent's organisation or the operator, never by the agent themselves (separation
of duties); blocked and unblocked only by the CSSI or the operator. The first person
habilitated in an organisation ends its transitional identities.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlmodel import Session, col, select

from habilitations import lookups
from habilitations.checks import (
    check_code,
    check_text,
    clean_scopes,
    forbidden,
    require_manager,
    require_not_self,
    require_security,
    require_security_if_held,
)
from habilitations.models import (
    ACTIF,
    BLOQUE,
    HUMAIN,
    REVOQUE,
    SUPPRIME,
    TECHNIQUE,
    TRANSITION_IDENTIFIANT,
    Agent,
    Habilitation,
    Souscription,
)
from habilitations.overrides import notify_rgc
from habilitations.policy import served_apis
from habilitations.profiles import api_profiles, is_useless
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from habilitations.transitional import end_transition
from habilitations.transitions import move_grant, new_grant, record, touch
from relais.core.auditing import AuditRecorder
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind
from relais.core.tables import Client


def grant_habilitation(
    session: Session,
    actor: Principal,
    *,
    agent_id: int,
    api: str,
    scopes: Iterable[str],
    finalite: str,
    justification: str | None = None,
    date_fin: date | None = None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """Habilitate an active agent for scopes of one API, within the organisation's subscription.

    The API must be one Relais serves, and the scopes must cover every scope of at least one
    of its operations: otherwise the agent would be refused on every call while the grant
    reads as given. One grant in force per agent and API: granting again is refused with the
    way out (extend, reduce, or revoke then grant), never silently merged.

    The actor is the RGC (titular or deputy) of the agent's organisation, or the hub operator,
    and never the agent themselves. The first person habilitated in an organisation ends its
    transitional identities.
    """
    agent = lookups.locked_agent(session, agent_id)
    organisation = lookups.organisation(session, agent.organisation_id)
    require_manager(actor, agent.organisation_id)
    require_not_self(actor, agent, "accorder")
    if agent.etat != ACTIF:
        raise TransitionRefused(RefusalKind.CONFLICT, "agent_inactif", "L'agent n'est pas actif")
    if agent.identifiant == TRANSITION_IDENTIFIANT:
        raise TransitionRefused(
            RefusalKind.CONFLICT,
            "identifiant_reserve",
            "L'identité transitoire ne reçoit pas de nouvelle habilitation",
        )
    check_api_known(api)
    wanted = clean_scopes(scopes)
    check_text("finalite", finalite, 255, required=True)
    check_text("justification", justification, 2000)
    _check_end_date(date_fin, now)
    check_within_subscription(session, agent, api, wanted)
    check_useful(api, wanted)
    existing = session.exec(
        select(Habilitation).where(
            Habilitation.agent_id == agent.id,
            Habilitation.api == api,
            col(Habilitation.etat).in_((ACTIF, BLOQUE)),
        )
    ).first()
    if existing is not None and existing.etat == BLOQUE:
        # A blocked grant awaits the security officers' review: no new grant around it.
        raise TransitionRefused(
            RefusalKind.CONFLICT, "habilitation_bloquee", "L'habilitation de l'agent pour cette API est bloquée"
        )
    if existing is not None:
        raise TransitionRefused(
            RefusalKind.CONFLICT,
            "habilitation_existante",
            "L'agent a déjà une habilitation active pour cette API : prolongez-la ou réduisez-la "
            "plutôt que d'en accorder une seconde ; pour lui ouvrir d'autres opérations, "
            "révoquez-la puis accordez la nouvelle",
        )
    grant = new_grant(
        session,
        actor,
        agent,
        organisation,
        api=api,
        scopes=wanted,
        finalite=finalite,
        justification=justification,
        date_fin=date_fin,
        now=now,
        recorder=recorder,
        request_id=request_id,
    )
    if agent.type == HUMAIN:
        end_transition(session, agent.organisation_id, now, recorder=recorder, request_id=request_id)
    return grant


def set_habilitation_end(
    session: Session,
    actor: Principal,
    habilitation_id: str,
    *,
    date_fin: date | None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """Extend (a later date, or none) or shorten a grant. Extending one's own grant is refused."""
    grant, agent, organisation = lookups.locked_grant(session, habilitation_id)
    require_manager(actor, agent.organisation_id)
    if grant.etat != ACTIF:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "etat_incompatible", "Seule une habilitation active peut être modifiée"
        )
    extends = date_fin is None or (grant.date_fin is not None and date_fin > grant.date_fin)
    if extends:
        require_not_self(actor, agent, "prolonger")
    _check_end_date(date_fin, now)
    if date_fin == grant.date_fin:
        return grant
    before = grant.date_fin
    grant.date_fin = date_fin
    touch(session, grant, now)
    record(
        session,
        actor,
        "habilitations.habilitation.prolonger" if extends else "habilitations.habilitation.raccourcir",
        agent=agent,
        organisation=organisation,
        grant=grant,
        now=now,
        details={
            "date_fin_avant": before.isoformat() if before else None,
            "date_fin_apres": date_fin.isoformat() if date_fin else None,
        },
        recorder=recorder,
        request_id=request_id,
    )
    return grant


def reduce_habilitation(
    session: Session,
    actor: Principal,
    habilitation_id: str,
    *,
    scopes: Iterable[str],
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """Keep only some of the grant's scopes (least privilege); never adds one."""
    grant, agent, organisation = lookups.locked_grant(session, habilitation_id)
    require_manager(actor, agent.organisation_id)
    if grant.etat != ACTIF:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "etat_incompatible", "Seule une habilitation active peut être réduite"
        )
    wanted = clean_scopes(scopes)
    if not set(wanted) < set(grant.scopes):
        raise TransitionRefused(
            RefusalKind.INVALID,
            "reduction_invalide",
            "Les scopes gardés doivent être une partie stricte de ceux accordés",
        )
    # The same rule as a grant: a reduction must leave at least one operation callable.
    check_useful(grant.api, wanted)
    before = list(grant.scopes)
    grant.scopes = [scope for scope in grant.scopes if scope in wanted]
    touch(session, grant, now)
    record(
        session,
        actor,
        "habilitations.habilitation.reduire",
        agent=agent,
        organisation=organisation,
        grant=grant,
        now=now,
        details={"scopes_avant": before, "scopes_apres": list(grant.scopes)},
        recorder=recorder,
        request_id=request_id,
    )
    return grant


def revoke_habilitation(
    session: Session,
    actor: Principal,
    habilitation_id: str,
    *,
    motif: str,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """End a grant (RGC of the organisation, operator, or CSSI in an incident)."""
    grant, agent, organisation = lookups.locked_grant(session, habilitation_id)
    if not (actor.is_operator or actor.is_rgc_of(agent.organisation_id) or actor.is_cssi):
        raise forbidden()
    check_code(motif)
    if grant.etat in (REVOQUE, SUPPRIME):
        raise TransitionRefused(RefusalKind.CONFLICT, "etat_incompatible", "Cette habilitation est déjà révoquée")
    require_security_if_held(actor, grant.etat)
    return move_grant(
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


def block_habilitation(
    session: Session,
    actor: Principal,
    habilitation_id: str,
    *,
    motif: str,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """Security override on one grant (CSSI or operator), flagged like an agent block."""
    require_security(actor)
    check_code(motif)
    grant, agent, organisation = lookups.locked_grant(session, habilitation_id)
    if grant.etat != ACTIF:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "etat_incompatible", "Seule une habilitation active peut être bloquée"
        )
    grant = move_grant(
        session,
        actor,
        grant,
        agent,
        organisation,
        BLOQUE,
        motif,
        "habilitations.habilitation.bloquer",
        now,
        extra={"override": True},
        recorder=recorder,
        request_id=request_id,
    )
    notify_rgc(
        session,
        organisation,
        {"habilitation_id": grant.id, "agent_id": agent.id, "motif": motif, "le": now.isoformat()},
        idempotency_key=f"blocage:habilitation:{grant.id}:{grant.version}",
        now=now,
    )
    return grant


def reactivate_habilitation(
    session: Session,
    actor: Principal,
    habilitation_id: str,
    *,
    motif: str = "reactivation",
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """Lift a security block on a grant (CSSI or operator)."""
    require_security(actor)
    check_code(motif)
    grant, agent, organisation = lookups.locked_grant(session, habilitation_id)
    if grant.etat != BLOQUE:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "etat_incompatible", "Seule une habilitation bloquée peut être réactivée"
        )
    return move_grant(
        session,
        actor,
        grant,
        agent,
        organisation,
        ACTIF,
        motif,
        "habilitations.habilitation.reactiver",
        now,
        recorder=recorder,
        request_id=request_id,
    )


def check_within_subscription(session: Session, agent: Agent, api: str, scopes: list[str]) -> None:
    """Grants stay within the organisation's subscription, and a technical identity's within its client's scopes."""
    subscription = session.exec(
        select(Souscription).where(Souscription.organisation_id == agent.organisation_id, Souscription.api == api)
    ).first()
    if subscription is None or not set(scopes) <= set(subscription.scopes):
        raise TransitionRefused(
            RefusalKind.FORBIDDEN,
            "hors_souscription",
            "Scopes hors de la souscription de l'organisation pour cette API",
        )
    if agent.type == TECHNIQUE:
        client = session.exec(select(Client).where(Client.client_id == agent.client_id)).first()
        if client is None or not set(scopes) <= set(client.scopes):
            raise TransitionRefused(
                RefusalKind.FORBIDDEN, "hors_client", "Scopes que le client de cette identité technique ne détient pas"
            )


def _check_end_date(date_fin: date | None, now: datetime) -> None:
    if date_fin is not None and date_fin < local_date(now):
        raise TransitionRefused(RefusalKind.INVALID, "date_fin_passee", "La date de fin est déjà passée")


def check_api_known(api: str) -> None:
    """A grant names an API Relais serves (its spec file's stem): a typo is not a subscription matter."""
    if api not in served_apis():
        raise TransitionRefused(
            RefusalKind.INVALID,
            "api_inconnue",
            "API inconnue : le nom d'une API servie par Relais est attendu (par exemple rechercher-usager-v2)",
        )


def check_useful(api: str, scopes: Iterable[str]) -> None:
    """Refuse scopes that cover no operation of the API: the agent would get R001 on every call."""
    held = set(scopes)
    if is_useless(api, held):
        # Name the nearest operation and what it still lacks: the fix, not just the fault.
        profile = api_profiles()[api]
        nearest = min(profile.operations, key=lambda op: (len(op.scopes - held), op.label))
        raise TransitionRefused(
            RefusalKind.INVALID,
            "habilitation_inutile",
            "Ces scopes ne permettent d'appeler aucune opération de cette API (une opération exige tous "
            f"ses scopes) : par exemple, « {nearest.label} » exige aussi "
            f"{', '.join(sorted(nearest.scopes - held))}",
        )
