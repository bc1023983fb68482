"""Agents: creating a person or a client's technical identity, and correcting their identity.

A new agent is active and holds no habilitation (deny by default). Who binds an account to a
ProConnect identity (first login matches by e-mail) must not be its holder, and a role
holder's binding is the CSSI's or the operator's. The identifiant ``*`` is reserved for the
transitional identity (``habilitations.transitional``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from habilitations import lookups
from habilitations.checks import (
    check_text,
    require_custodian,
    require_eligible,
    require_manager,
    require_not_deleted,
    require_security_if_held,
)
from habilitations.models import ACTIF, HUMAIN, STATUTS_EMPLOI, TECHNIQUE, TRANSITION_IDENTIFIANT, Agent
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from habilitations.transitions import record
from relais.core.auditing import AuditRecorder
from relais.core.refusals import RefusalKind
from relais.core.tables import Client, Organisation

# The identity fields ``update_agent`` may change.
AGENT_FIELDS = ("identifiant", "nom", "prenom", "email", "sub", "siret", "statut_emploi")


def create_agent(
    session: Session,
    actor: Principal,
    *,
    organisation_id: int,
    identifiant: str,
    nom: str,
    prenom: str = "",
    email: str | None = None,
    sub: str | None = None,
    siret: str | None = None,
    statut_emploi: str | None = None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """A person of the organisation, active, with no habilitation (deny by default)."""
    organisation = lookups.organisation(session, organisation_id)
    require_manager(actor, organisation_id)
    check_identifiant(identifiant)
    if identifiant == TRANSITION_IDENTIFIANT:
        raise _reserved()
    check_statut(statut_emploi)
    check_text("nom", nom, 100, required=True)
    check_text("prenom", prenom, 100)
    if lookups.agent_by_identifiant(session, organisation_id, "", identifiant) is not None:
        raise _taken("Un agent de l'organisation porte déjà cet identifiant")
    if sub is not None and session.exec(select(Agent).where(Agent.sub == sub)).first() is not None:
        raise _sub_taken()
    agent = Agent(
        organisation_id=organisation_id,
        identifiant=identifiant,
        type=HUMAIN,
        client_id="",
        sub=sub,
        email=email,
        nom=nom,
        prenom=prenom,
        siret=siret,
        statut_emploi=statut_emploi,
        etat=ACTIF,
        etat_depuis=now,
        created_at=now,
        updated_at=now,
    )
    session.add(agent)
    session.flush()
    record(
        session,
        actor,
        "habilitations.agent.creer",
        agent=agent,
        organisation=organisation,
        now=now,
        details={"apres": ACTIF, "type": HUMAIN},
        recorder=recorder,
        request_id=request_id,
    )
    return agent


def update_agent(
    session: Session,
    actor: Principal,
    agent_id: int,
    *,
    changes: Mapping[str, Any],
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """Change identity fields (``identifiant``, ``nom``, ``prenom``, ``email``, ``sub``,
    ``siret``, ``statut_emploi``). The audit event names the changed fields, not the values."""
    unknown = sorted(set(changes) - set(AGENT_FIELDS))
    if unknown:
        raise TransitionRefused(RefusalKind.INVALID, "champ_non_modifiable", f"Champ non modifiable : {unknown[0]}")
    agent = lookups.locked_agent(session, agent_id)
    organisation = lookups.organisation(session, agent.organisation_id)
    identity = sorted(set(changes) & {"identifiant", "email", "sub"})
    held = lookups.designations_of(session, agent, now)
    # A role holder's binding and employment status are the CSSI's or the operator's: the
    # status decides who may be an RGC, the binding who logs in with the role.
    protected = bool(identity) or changes.get("statut_emploi", agent.statut_emploi) != agent.statut_emploi
    if not (protected and held and actor.is_cssi):
        require_manager(actor, agent.organisation_id)
    require_not_deleted(agent)
    require_security_if_held(actor, agent.etat)
    if identity and actor.agent_id is not None and actor.agent_id == agent.id:
        raise TransitionRefused(
            RefusalKind.FORBIDDEN,
            "separation_des_roles",
            "Un agent ne peut pas modifier son propre identifiant ou e-mail",
        )
    if protected:
        require_custodian(actor, agent.organisation_id, held)
    if "identifiant" in changes:
        check_identifiant(str(changes["identifiant"]))
        if changes["identifiant"] == TRANSITION_IDENTIFIANT or agent.identifiant == TRANSITION_IDENTIFIANT:
            raise _reserved()
        other = lookups.agent_by_identifiant(
            session, agent.organisation_id, agent.client_id, str(changes["identifiant"])
        )
        if other is not None and other.id != agent.id:
            raise _taken("Un agent de l'organisation porte déjà cet identifiant")
    if "statut_emploi" in changes:
        check_statut(changes["statut_emploi"])
        # Eligibility holds while the role does: a change that would make a role holder
        # ineligible is refused, whoever asks (end the designation first).
        for designation in held:
            require_eligible(designation.role, changes["statut_emploi"])
    if "nom" in changes:
        check_text("nom", changes["nom"], 100, required=True)
    if changes.get("sub") is not None:
        other = session.exec(select(Agent).where(Agent.sub == changes["sub"])).first()
        if other is not None and other.id != agent.id:
            raise _sub_taken()
    changed = sorted(name for name, value in changes.items() if getattr(agent, name) != value)
    if not changed:
        return agent
    for name in changed:
        setattr(agent, name, changes[name])
    agent.updated_at = now
    agent.version += 1
    session.add(agent)
    session.flush()
    record(
        session,
        actor,
        "habilitations.agent.modifier",
        agent=agent,
        organisation=organisation,
        now=now,
        details={"champs": changed},
        recorder=recorder,
        request_id=request_id,
    )
    return agent


def create_technical_identity(
    session: Session,
    actor: Principal,
    *,
    client_id: str,
    nom: str,
    identifiant: str = "BATCH",
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """A named batch identity bound to one client: it acts only through that client."""
    client = lookups.client(session, client_id)
    organisation = lookups.organisation(session, client.organisation_id)
    require_manager(actor, client.organisation_id)
    check_identifiant(identifiant)
    if identifiant == TRANSITION_IDENTIFIANT:
        raise _reserved()
    check_text("nom", nom, 100, required=True)
    return new_technical_identity(
        session, actor, client, organisation, identifiant, nom, now, recorder=recorder, request_id=request_id
    )


def new_technical_identity(
    session: Session,
    actor: Principal,
    client: Client,
    organisation: Organisation,
    identifiant: str,
    nom: str,
    now: datetime,
    *,
    recorder: AuditRecorder,
    request_id: str,
) -> Agent:
    """The client's identity of that identifiant, once the caller checked who acts and the values."""
    if lookups.agent_by_identifiant(session, client.organisation_id, client.client_id, identifiant) is not None:
        raise _taken("Ce client a déjà une identité technique de cet identifiant")
    agent = Agent(
        organisation_id=client.organisation_id,
        identifiant=identifiant,
        type=TECHNIQUE,
        client_id=client.client_id,
        nom=nom,
        etat=ACTIF,
        etat_depuis=now,
        created_at=now,
        updated_at=now,
    )
    session.add(agent)
    session.flush()
    record(
        session,
        actor,
        "habilitations.identite_technique.creer",
        agent=agent,
        organisation=organisation,
        now=now,
        details={"apres": ACTIF, "type": TECHNIQUE, "client_id": client.client_id},
        recorder=recorder,
        request_id=request_id,
    )
    return agent


def check_identifiant(identifiant: str) -> None:
    """The ``pa-identifiant-agent`` value: printable, 1 to 100 characters, no ``|``."""
    if not isinstance(identifiant, str) or not 1 <= len(identifiant) <= 100 or not identifiant.strip():
        raise TransitionRefused(
            RefusalKind.INVALID, "identifiant_invalide", "Identifiant d'agent invalide : 1 à 100 caractères"
        )
    if "|" in identifiant or not identifiant.isprintable():
        raise TransitionRefused(
            RefusalKind.INVALID, "identifiant_invalide", "Identifiant d'agent invalide : caractère interdit"
        )


def check_statut(statut: Any) -> None:
    if statut is not None and statut not in STATUTS_EMPLOI:
        raise TransitionRefused(
            RefusalKind.INVALID, "statut_emploi_invalide", f"Statut d'emploi invalide ({', '.join(STATUTS_EMPLOI)})"
        )


def _reserved() -> TransitionRefused:
    return TransitionRefused(RefusalKind.INVALID, "identifiant_reserve", "Identifiant d'agent réservé")


def _taken(message: str) -> TransitionRefused:
    return TransitionRefused(RefusalKind.CONFLICT, "agent_existant", message)


def _sub_taken() -> TransitionRefused:
    return TransitionRefused(
        RefusalKind.CONFLICT, "sub_existant", "Cette identité ProConnect est déjà rattachée à un agent"
    )
