"""The transitional identity: how a client that existed before enforcement keeps working.

A technical identity ``*`` of that client, habilitated for the client's scopes on every API
its organisation subscribes to, with purpose ``transition``: a partner call whose
``pa-identifiant-agent`` matches no agent is made under it (``habilitations.policy``). It is
revoked when the organisation's RGC habilitates its first person, or by the operator, and
the transition never restarts.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from habilitations import lookups
from habilitations.agent_states import revoke_agent
from habilitations.agents import new_technical_identity
from habilitations.checks import require_operator
from habilitations.models import (
    ACTIF,
    HUMAIN,
    TECHNIQUE,
    TRANSITION_FINALITE,
    TRANSITION_IDENTIFIANT,
    Agent,
    Habilitation,
    Souscription,
)
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from habilitations.transitions import SYSTEM_ACTOR, new_grant
from relais.core.auditing import AuditRecorder
from relais.core.refusals import RefusalKind

__all__ = ["TRANSITION_FINALITE", "TRANSITION_IDENTIFIANT", "create_transitional_identity", "end_transition"]


def create_transitional_identity(
    session: Session,
    actor: Principal,
    *,
    client_id: str,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Habilitation:
    """The migration path of a client that existed before enforcement (operator only).

    Returns its grant for the first API (one grant per subscribed API is created).
    """
    require_operator(actor)
    client = lookups.client(session, client_id)
    organisation = lookups.organisation(session, client.organisation_id)
    existing = lookups.agent_by_identifiant(session, client.organisation_id, client.client_id, TRANSITION_IDENTIFIANT)
    if existing is not None:
        raise TransitionRefused(
            RefusalKind.CONFLICT, "identite_transitoire_existante", "Ce client a déjà une identité transitoire"
        )
    habilitated_person = session.exec(
        select(Habilitation.id)
        .join(Agent, col(Agent.id) == Habilitation.agent_id)
        .where(Agent.organisation_id == client.organisation_id, Agent.type == HUMAIN, Habilitation.etat == ACTIF)
    ).first()
    if habilitated_person is not None:
        # The transition ends with the organisation's first habilitated person: it never restarts.
        raise TransitionRefused(
            RefusalKind.CONFLICT,
            "organisation_deja_habilitee",
            "L'organisation habilite déjà ses agents : pas d'identité transitoire",
        )
    subscriptions = session.exec(
        select(Souscription).where(Souscription.organisation_id == client.organisation_id)
    ).all()
    scoped = [(s.api, sorted(set(s.scopes) & set(client.scopes))) for s in subscriptions]
    scoped = [(api, scopes) for api, scopes in sorted(scoped) if scopes]
    if not scoped:
        raise TransitionRefused(
            RefusalKind.FORBIDDEN,
            "hors_souscription",
            "Aucune souscription de l'organisation ne couvre les scopes du client",
        )
    identity = new_technical_identity(
        session,
        actor,
        client,
        organisation,
        TRANSITION_IDENTIFIANT,
        f"Transition {client.client_id}",
        now,
        recorder=recorder,
        request_id=request_id,
    )
    grants = [
        new_grant(
            session,
            actor,
            identity,
            organisation,
            api=api,
            scopes=scopes,
            finalite=TRANSITION_FINALITE,
            justification="Client antérieur à l'application des habilitations",
            date_fin=None,
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
        for api, scopes in scoped
    ]
    return grants[0]


def end_transition(
    session: Session, organisation_id: int, now: datetime, *, recorder: AuditRecorder, request_id: str
) -> None:
    """The organisation habilitated its first person: its transitional identities are revoked."""
    identities = session.exec(
        select(Agent).where(
            Agent.organisation_id == organisation_id,
            Agent.identifiant == TRANSITION_IDENTIFIANT,
            Agent.type == TECHNIQUE,
            Agent.etat == ACTIF,
        )
    ).all()
    for identity in identities:
        assert identity.id is not None
        revoke_agent(
            session,
            SYSTEM_ACTOR,
            identity.id,
            motif="premiere_habilitation_nominative",
            now=now,
            recorder=recorder,
            request_id=request_id,
        )
