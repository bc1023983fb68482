"""Every state change of agents, grants, designations and subscriptions, each audited once.

The admin API, the CLI, the import, the inactivity sweep and the request-time check all go
through these functions, so one rule holds everywhere: deny by default, separation of duties
(an RGC never grants or extends their own habilitations), grants bounded by the
organisation's subscription, and exactly one audit event per transition, written in the
caller's session (committed with the caller's work, or not at all).

Each function takes the session, the acting ``Principal`` and ``now``; it raises
``LifecycleRefused`` (a stable code, a French message, the HTTP status an API answers) and
changes nothing when it refuses. Rows are read ``with_for_update()`` before they move.
Audit ``details`` hold states, reason codes and field names, never personal data.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlmodel import Session, SQLModel, col, select

from api.context import current_request
from audit.journal import append_event
from audit.models import AuditEvent
from habilitations.models import (
    ACTIF,
    BLOQUE,
    CSSI,
    HUMAIN,
    REVOQUE,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    ROLES,
    RSSI,
    STATUTS_ELIGIBLES_RGC,
    STATUTS_EMPLOI,
    SUPPRIME,
    SUSPENDU_INACTIVITE,
    TECHNIQUE,
    Agent,
    Designation,
    Habilitation,
    Souscription,
)
from habilitations.roles import Principal
from relais.core.auditing import AuditDraft
from relais.core.outbox import enqueue
from relais.core.tables import Client, Organisation

# The automatic actor of the inactivity sweep and of the request-time check.
SYSTEM_ACTOR = Principal(
    agent_id=None, organisation_id=None, organisation=None, roles=frozenset(), libelle="relais:lifecycle"
)

# The operations of a security override, flagged for the next review campaign.
BLOCK_OPERATIONS = ("habilitations.agent.bloquer", "habilitations.habilitation.bloquer")

# The transitional technical identity of a client that existed before enforcement (see
# ``create_transitional_identity``): a partner call whose pa-identifiant-agent matches no
# agent is made under it while it is active.
TRANSITION_IDENTIFIANT = "*"
TRANSITION_FINALITE = "transition"

# The convention (Annexe 1): an RGC's departure, change of function or absence of more than
# two months is reported to France Travail's CSSI within 8 days.
CSSI_NOTICE_DAYS = 8
RGC_NOTICE_REASONS = ("depart", "changement_fonction", "absence_prolongee")

# Outbox topics.
TOPIC_OVERRIDE = "habilitations.securite.blocage"
TOPIC_RGC_NOTICE = "habilitations.rgc.signalement_cssi"

_CODE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_AGENT_FIELDS = ("identifiant", "nom", "prenom", "email", "sub", "siret", "statut_emploi")

Row = TypeVar("Row", bound=SQLModel)


class LifecycleRefused(Exception):
    """A lifecycle action that cannot be done: ``code`` is stable, ``message`` French."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status


# Agents ------------------------------------------------------------------------------


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
) -> Agent:
    """A person of the organisation, active, with no habilitation (deny by default)."""
    organisation = _organisation(session, organisation_id)
    _require_manager(actor, organisation_id)
    _check_identifiant(identifiant)
    if identifiant == TRANSITION_IDENTIFIANT:
        raise LifecycleRefused("identifiant_reserve", "Identifiant d'agent réservé", 400)
    _check_statut(statut_emploi)
    _check_text("nom", nom, 100, required=True)
    _check_text("prenom", prenom, 100)
    if _agent_by_identifiant(session, organisation_id, "", identifiant) is not None:
        raise LifecycleRefused("agent_existant", "Un agent de l'organisation porte déjà cet identifiant")
    if sub is not None and session.exec(select(Agent).where(Agent.sub == sub)).first() is not None:
        raise LifecycleRefused("sub_existant", "Cette identité ProConnect est déjà rattachée à un agent")
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
    _audit(
        session,
        actor,
        "habilitations.agent.creer",
        agent=agent,
        organisation=organisation,
        now=now,
        details={"apres": ACTIF, "type": HUMAIN},
    )
    return agent


# ``etat_motif`` of an agent revoked by the CSSI as a security measure.
SECURITY_HOLD_PREFIX = "securite:"


def update_agent(
    session: Session, actor: Principal, agent_id: int, *, changes: Mapping[str, Any], now: datetime
) -> Agent:
    """Change identity fields (``identifiant``, ``nom``, ``prenom``, ``email``, ``sub``,
    ``siret``, ``statut_emploi``). The audit event names the changed fields, not the values."""
    unknown = sorted(set(changes) - set(_AGENT_FIELDS))
    if unknown:
        raise LifecycleRefused("champ_non_modifiable", f"Champ non modifiable : {unknown[0]}", 400)
    agent = _locked_agent(session, agent_id)
    organisation = _organisation(session, agent.organisation_id)
    _require_manager(actor, agent.organisation_id)
    _require_not_deleted(agent)
    _require_security_if_held(actor, agent.etat)
    identity = sorted(set(changes) & {"identifiant", "email", "sub"})
    if identity:
        # Whoever binds an account to a ProConnect identity (first login matches by e-mail)
        # must not be its holder, and a role holder's binding is the CSSI's or operator's.
        if actor.agent_id is not None and actor.agent_id == agent.id:
            raise LifecycleRefused(
                "separation_des_roles", "Un agent ne peut pas modifier son propre identifiant ou e-mail", 403
            )
        if _current_designations_of(session, agent, now):
            _require_security(actor)
    if "identifiant" in changes:
        _check_identifiant(str(changes["identifiant"]))
        if changes["identifiant"] == TRANSITION_IDENTIFIANT or agent.identifiant == TRANSITION_IDENTIFIANT:
            raise LifecycleRefused("identifiant_reserve", "Identifiant d'agent réservé", 400)
        other = _agent_by_identifiant(session, agent.organisation_id, agent.client_id, str(changes["identifiant"]))
        if other is not None and other.id != agent.id:
            raise LifecycleRefused("agent_existant", "Un agent de l'organisation porte déjà cet identifiant")
    if "statut_emploi" in changes:
        _check_statut(changes["statut_emploi"])
    if "nom" in changes:
        _check_text("nom", changes["nom"], 100, required=True)
    if changes.get("sub") is not None:
        other = session.exec(select(Agent).where(Agent.sub == changes["sub"])).first()
        if other is not None and other.id != agent.id:
            raise LifecycleRefused("sub_existant", "Cette identité ProConnect est déjà rattachée à un agent")
    changed = sorted(name for name, value in changes.items() if getattr(agent, name) != value)
    if not changed:
        return agent
    for name in changed:
        setattr(agent, name, changes[name])
    agent.updated_at = now
    agent.version += 1
    session.add(agent)
    session.flush()
    _audit(
        session,
        actor,
        "habilitations.agent.modifier",
        agent=agent,
        organisation=organisation,
        now=now,
        details={"champs": changed},
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
) -> Agent:
    """A named batch identity bound to one client: it acts only through that client."""
    client = _client(session, client_id)
    organisation = _organisation(session, client.organisation_id)
    _require_manager(actor, client.organisation_id)
    _check_identifiant(identifiant)
    if identifiant == TRANSITION_IDENTIFIANT:
        raise LifecycleRefused("identifiant_reserve", "Identifiant d'agent réservé", 400)
    _check_text("nom", nom, 100, required=True)
    return _new_technical_identity(session, actor, client, organisation, identifiant, nom, now)


def create_transitional_identity(session: Session, actor: Principal, *, client_id: str, now: datetime) -> Habilitation:
    """The migration path of a client that existed before enforcement (operator only).

    A technical identity ``*`` of that client, habilitated for the client's scopes on every
    API its organisation subscribes to, with purpose ``transition``. It is revoked when the
    organisation's RGC habilitates its first person, or by the operator. Returns its grant
    for the first API (one grant per subscribed API is created).
    """
    _require_operator(actor)
    client = _client(session, client_id)
    organisation = _organisation(session, client.organisation_id)
    if _agent_by_identifiant(session, client.organisation_id, client.client_id, TRANSITION_IDENTIFIANT) is not None:
        raise LifecycleRefused("identite_transitoire_existante", "Ce client a déjà une identité transitoire")
    habilitated_person = session.exec(
        select(Habilitation.id)
        .join(Agent, col(Agent.id) == Habilitation.agent_id)
        .where(Agent.organisation_id == client.organisation_id, Agent.type == HUMAIN, Habilitation.etat == ACTIF)
    ).first()
    if habilitated_person is not None:
        # The transition ends with the organisation's first habilitated person: it never restarts.
        raise LifecycleRefused(
            "organisation_deja_habilitee", "L'organisation habilite déjà ses agents : pas d'identité transitoire"
        )
    subscriptions = session.exec(
        select(Souscription).where(Souscription.organisation_id == client.organisation_id)
    ).all()
    scoped = [(s.api, sorted(set(s.scopes) & set(client.scopes))) for s in subscriptions]
    scoped = [(api, scopes) for api, scopes in sorted(scoped) if scopes]
    if not scoped:
        raise LifecycleRefused(
            "hors_souscription", "Aucune souscription de l'organisation ne couvre les scopes du client", 403
        )
    identity = _new_technical_identity(
        session, actor, client, organisation, TRANSITION_IDENTIFIANT, f"Transition {client.client_id}", now
    )
    grants = [
        _new_grant(
            session,
            actor,
            identity,
            organisation,
            api,
            scopes,
            TRANSITION_FINALITE,
            "Client antérieur à l'application des habilitations",
            None,
            now,
        )
        for api, scopes in scoped
    ]
    return grants[0]


def suspend_for_inactivity(
    session: Session, agent_id: int, *, due: date, now: datetime, actor: Principal = SYSTEM_ACTOR
) -> Agent:
    """Two calendar months without activity: the agent is refused until an RGC reactivates them."""
    agent = _locked_agent(session, agent_id)
    if agent.etat != ACTIF:
        raise LifecycleRefused("etat_incompatible", "Seul un agent actif peut être suspendu pour inactivité")
    agent = _move_agent(
        session,
        actor,
        agent,
        SUSPENDU_INACTIVITE,
        "inactivite",
        "habilitations.agent.suspendre",
        now,
        extra={"echeance": due.isoformat()},
    )
    _notify_rgc_change(session, agent, "absence_prolongee", now)
    return agent


def block_agent(
    session: Session, actor: Principal, agent_id: int, *, motif: str, commentaire: str | None = None, now: datetime
) -> Agent:
    """Security override (CSSI or hub operator): blocked pending review, with a reason code.

    The organisation's RGC is notified through the outbox, and the override is flagged for
    the next review campaign: see ``security_overrides``.
    """
    _require_security(actor)
    _check_code(motif)
    _check_text("commentaire", commentaire, 255)
    agent = _locked_agent(session, agent_id)
    if agent.etat not in (ACTIF, SUSPENDU_INACTIVITE):
        raise LifecycleRefused("etat_incompatible", "Seul un agent actif ou suspendu peut être bloqué")
    agent = _move_agent(
        session,
        actor,
        agent,
        BLOQUE,
        motif,
        "habilitations.agent.bloquer",
        now,
        extra={"override": True},
        etat_motif=commentaire or motif,
    )
    organisation = _organisation(session, agent.organisation_id)
    enqueue(
        session,
        topic=TOPIC_OVERRIDE,
        recipient=f"rgc:{organisation.code}",
        payload={"agent_id": agent.id, "motif": motif, "organisation": organisation.code, "le": now.isoformat()},
        idempotency_key=f"blocage:agent:{agent.id}:{agent.version}",
        now=now,
        organisation_id=organisation.id,
    )
    return agent


def revoke_agent(session: Session, actor: Principal, agent_id: int, *, motif: str, now: datetime) -> Agent:
    """Departure or change of function (``motif`` e.g. ``depart``, ``changement_fonction``).

    Its active grants are revoked and its designations ended too, each its own transition
    with its own audit event; an RGC's departure raises the CSSI notice.
    """
    agent = _locked_agent(session, agent_id)
    if not (actor.is_operator or actor.is_rgc_of(agent.organisation_id) or actor.is_cssi):
        raise _forbidden()
    _check_code(motif)
    if agent.etat in (REVOQUE, SUPPRIME):
        raise LifecycleRefused("etat_incompatible", "Cet agent est déjà révoqué ou supprimé")
    _require_security_if_held(actor, agent.etat)
    # A revocation by the CSSI (not the organisation's own RGC) is a security measure too:
    # only the CSSI or the operator may undo it.
    held = actor.is_cssi and not actor.is_operator and not actor.is_rgc_of(agent.organisation_id)
    agent = _move_agent(
        session,
        actor,
        agent,
        REVOQUE,
        motif,
        "habilitations.agent.revoquer",
        now,
        etat_motif=f"{SECURITY_HOLD_PREFIX}{motif}" if held else None,
    )
    _close_everything(session, actor, agent, motif, now)
    return agent


def reactivate_agent(
    session: Session, actor: Principal, agent_id: int, *, motif: str = "reactivation", now: datetime
) -> Agent:
    """Back to active: the RGC for an inactivity suspension or a revocation (the agent has no
    grant left after a revocation); only the CSSI or the operator lift a security block."""
    agent = _locked_agent(session, agent_id)
    _check_code(motif)
    if agent.etat == BLOQUE or _security_revocation(agent):
        _require_security(actor)
    elif agent.etat in (SUSPENDU_INACTIVITE, REVOQUE):
        _require_manager(actor, agent.organisation_id)
    else:
        raise LifecycleRefused("etat_incompatible", "Cet agent ne peut pas être réactivé depuis son état")
    if actor.agent_id is not None and actor.agent_id == agent.id:
        raise LifecycleRefused("separation_des_roles", "Un agent ne peut pas se réactiver lui-même", 403)
    # Reactivation restarts the inactivity clock: without it the next request would suspend again.
    agent.derniere_activite = now
    return _move_agent(session, actor, agent, ACTIF, motif, "habilitations.agent.reactiver", now)


def delete_agent(
    session: Session, actor: Principal, agent_id: int, *, motif: str = "suppression", now: datetime
) -> Agent:
    """The account is closed for good: its ProConnect link and e-mail are erased, the row stays
    as the target of past audit events."""
    agent = _locked_agent(session, agent_id)
    _require_manager(actor, agent.organisation_id)
    _check_code(motif)
    _require_not_deleted(agent)
    _require_security_if_held(actor, agent.etat)
    if _security_revocation(agent):
        _require_security(actor)
    agent.sub = None
    agent.email = None
    agent = _move_agent(session, actor, agent, SUPPRIME, motif, "habilitations.agent.supprimer", now)
    _close_everything(session, actor, agent, motif, now)
    return agent


def record_activity(session: Session, agent: Agent, now: datetime) -> None:
    """A call accepted for the agent: the input of the inactivity rule (not a transition)."""
    agent.derniere_activite = now
    session.add(agent)


# Habilitations -----------------------------------------------------------------------


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
) -> Habilitation:
    """Habilitate an active agent for scopes of one API, within the organisation's subscription.

    The actor is the RGC (titular or deputy) of the agent's organisation, or the hub operator,
    and never the agent themselves. The first person habilitated in an organisation ends its
    transitional identities.
    """
    agent = _locked_agent(session, agent_id)
    organisation = _organisation(session, agent.organisation_id)
    _require_manager(actor, agent.organisation_id)
    _require_not_self(actor, agent, "accorder")
    if agent.etat != ACTIF:
        raise LifecycleRefused("agent_inactif", "L'agent n'est pas actif")
    if agent.identifiant == TRANSITION_IDENTIFIANT:
        raise LifecycleRefused("identifiant_reserve", "L'identité transitoire ne reçoit pas de nouvelle habilitation")
    wanted = _clean_scopes(scopes)
    _check_text("finalite", finalite, 255, required=True)
    _check_text("justification", justification, 2000)
    if date_fin is not None and date_fin < now.date():
        raise LifecycleRefused("date_fin_passee", "La date de fin est déjà passée", 400)
    _check_within_subscription(session, agent, api, wanted)
    existing = session.exec(
        select(Habilitation).where(
            Habilitation.agent_id == agent.id,
            Habilitation.api == api,
            col(Habilitation.etat).in_((ACTIF, BLOQUE)),
        )
    ).first()
    if existing is not None and existing.etat == BLOQUE:
        # A blocked grant awaits the security officers' review: no new grant around it.
        raise LifecycleRefused("habilitation_bloquee", "L'habilitation de l'agent pour cette API est bloquée")
    if existing is not None:
        raise LifecycleRefused("habilitation_existante", "L'agent a déjà une habilitation active pour cette API")
    grant = _new_grant(session, actor, agent, organisation, api, wanted, finalite, justification, date_fin, now)
    if agent.type == HUMAIN:
        _end_transition(session, agent.organisation_id, now)
    return grant


def set_habilitation_end(
    session: Session, actor: Principal, habilitation_id: str, *, date_fin: date | None, now: datetime
) -> Habilitation:
    """Extend (a later date, or none) or shorten a grant. Extending one's own grant is refused."""
    grant, agent, organisation = _locked_grant(session, habilitation_id)
    _require_manager(actor, agent.organisation_id)
    if grant.etat != ACTIF:
        raise LifecycleRefused("etat_incompatible", "Seule une habilitation active peut être modifiée")
    extends = date_fin is None or (grant.date_fin is not None and date_fin > grant.date_fin)
    if extends:
        _require_not_self(actor, agent, "prolonger")
    if date_fin is not None and date_fin < now.date():
        raise LifecycleRefused("date_fin_passee", "La date de fin est déjà passée", 400)
    if date_fin == grant.date_fin:
        return grant
    before = grant.date_fin
    grant.date_fin = date_fin
    _touch(session, grant, now)
    _audit(
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
    )
    return grant


def reduce_habilitation(
    session: Session, actor: Principal, habilitation_id: str, *, scopes: Iterable[str], now: datetime
) -> Habilitation:
    """Keep only some of the grant's scopes (least privilege); never adds one."""
    grant, agent, organisation = _locked_grant(session, habilitation_id)
    _require_manager(actor, agent.organisation_id)
    if grant.etat != ACTIF:
        raise LifecycleRefused("etat_incompatible", "Seule une habilitation active peut être réduite")
    wanted = _clean_scopes(scopes)
    if not set(wanted) < set(grant.scopes):
        raise LifecycleRefused(
            "reduction_invalide", "Les scopes gardés doivent être une partie stricte de ceux accordés", 400
        )
    before = list(grant.scopes)
    grant.scopes = [scope for scope in grant.scopes if scope in wanted]
    _touch(session, grant, now)
    _audit(
        session,
        actor,
        "habilitations.habilitation.reduire",
        agent=agent,
        organisation=organisation,
        grant=grant,
        now=now,
        details={"scopes_avant": before, "scopes_apres": list(grant.scopes)},
    )
    return grant


def revoke_habilitation(
    session: Session, actor: Principal, habilitation_id: str, *, motif: str, now: datetime
) -> Habilitation:
    """End a grant (RGC of the organisation, operator, or CSSI in an incident)."""
    grant, agent, organisation = _locked_grant(session, habilitation_id)
    if not (actor.is_operator or actor.is_rgc_of(agent.organisation_id) or actor.is_cssi):
        raise _forbidden()
    _check_code(motif)
    if grant.etat in (REVOQUE, SUPPRIME):
        raise LifecycleRefused("etat_incompatible", "Cette habilitation est déjà révoquée")
    _require_security_if_held(actor, grant.etat)
    return _move_grant(
        session, actor, grant, agent, organisation, REVOQUE, motif, "habilitations.habilitation.revoquer", now
    )


def block_habilitation(
    session: Session, actor: Principal, habilitation_id: str, *, motif: str, now: datetime
) -> Habilitation:
    """Security override on one grant (CSSI or operator), flagged like an agent block."""
    _require_security(actor)
    _check_code(motif)
    grant, agent, organisation = _locked_grant(session, habilitation_id)
    if grant.etat != ACTIF:
        raise LifecycleRefused("etat_incompatible", "Seule une habilitation active peut être bloquée")
    grant = _move_grant(
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
    )
    enqueue(
        session,
        topic=TOPIC_OVERRIDE,
        recipient=f"rgc:{organisation.code}",
        payload={"habilitation_id": grant.id, "agent_id": agent.id, "motif": motif, "le": now.isoformat()},
        idempotency_key=f"blocage:habilitation:{grant.id}:{grant.version}",
        now=now,
        organisation_id=organisation.id,
    )
    return grant


def reactivate_habilitation(
    session: Session, actor: Principal, habilitation_id: str, *, motif: str = "reactivation", now: datetime
) -> Habilitation:
    """Lift a security block on a grant (CSSI or operator)."""
    _require_security(actor)
    _check_code(motif)
    grant, agent, organisation = _locked_grant(session, habilitation_id)
    if grant.etat != BLOQUE:
        raise LifecycleRefused("etat_incompatible", "Seule une habilitation bloquée peut être réactivée")
    return _move_grant(
        session, actor, grant, agent, organisation, ACTIF, motif, "habilitations.habilitation.reactiver", now
    )


# Designations ------------------------------------------------------------------------


def designate(
    session: Session,
    actor: Principal,
    *,
    organisation_id: int,
    agent_id: int,
    role: str,
    acte_engagement_le: date | None = None,
    now: datetime,
) -> Designation:
    """Give a role. RGC titular/deputy: a civil servant or contract agent of the organisation,
    with the date of their commitment act, one titular at a time (titular: operator or CSSI;
    deputy: also the organisation's titular RGC). RSSI: operator, CSSI or titular RGC.
    CSSI: an agent of a France Travail organisation, operator only. Operator: operator only."""
    if role not in ROLES:
        raise LifecycleRefused("role_inconnu", "Rôle inconnu", 400)
    organisation = _organisation(session, organisation_id)
    agent = _locked_agent(session, agent_id)
    if agent.organisation_id != organisation_id:
        raise LifecycleRefused("agent_hors_organisation", "L'agent n'appartient pas à cette organisation", 400)
    if agent.etat != ACTIF or agent.type != HUMAIN:
        raise LifecycleRefused("agent_inactif", "Seul un agent actif, une personne, peut recevoir un rôle")
    allowed = actor.is_operator
    if role in (RGC_TITULAIRE,):
        allowed = allowed or actor.is_cssi
    elif role in (RGC_SUPPLEANT, RSSI):
        allowed = allowed or actor.is_cssi or actor.has_role(RGC_TITULAIRE, organisation_id)
    if not allowed:
        raise _forbidden()
    if actor.agent_id is not None and actor.agent_id == agent.id:
        raise LifecycleRefused("separation_des_roles", "Un agent ne peut pas se désigner lui-même", 403)
    if role in (RGC_TITULAIRE, RGC_SUPPLEANT):
        if agent.statut_emploi not in STATUTS_ELIGIBLES_RGC:
            raise LifecycleRefused(
                "statut_non_eligible", "Le RGC est un fonctionnaire ou un contractuel de l'organisation", 400
            )
        if acte_engagement_le is None:
            raise LifecycleRefused(
                "acte_engagement_requis", "La date de l'acte d'engagement du RGC est obligatoire", 400
            )
        if acte_engagement_le > now.date():
            raise LifecycleRefused("acte_engagement_futur", "La date de l'acte d'engagement est dans le futur", 400)
    if role == CSSI and organisation.type != "FT":
        raise LifecycleRefused("cssi_hors_france_travail", "Le CSSI est un agent de France Travail", 400)
    current = current_designations(session, organisation_id, now)
    if any(d.agent_id == agent.id and d.role == role for d in current):
        raise LifecycleRefused("designation_existante", "L'agent détient déjà ce rôle")
    if role == RGC_TITULAIRE and any(d.role == RGC_TITULAIRE for d in current):
        raise LifecycleRefused(
            "titulaire_existant", "L'organisation a déjà un RGC titulaire : mettez fin à sa désignation"
        )
    assert agent.id is not None
    designation = Designation(
        organisation_id=organisation_id, agent_id=agent.id, role=role, acte_engagement_le=acte_engagement_le, debut=now
    )
    session.add(designation)
    session.flush()
    _audit(
        session,
        actor,
        "habilitations.designation.designer",
        agent=agent,
        organisation=organisation,
        now=now,
        target=f"designation:{designation.id}",
        details={"role": role, "apres": "en_cours"},
    )
    return designation


def end_designation(
    session: Session, actor: Principal, designation_id: int, *, motif: str, now: datetime
) -> Designation:
    """End a role. For an RGC leaving, changing function or absent (``depart``,
    ``changement_fonction``, ``absence_prolongee``) the CSSI notice is raised (8 days)."""
    designation = _locked(session, Designation, designation_id, "designation_inconnue", "Désignation inconnue")
    _check_code(motif)
    if designation.role in (RGC_SUPPLEANT, RSSI):
        allowed = actor.is_operator or actor.is_cssi or actor.has_role(RGC_TITULAIRE, designation.organisation_id)
    elif designation.role == RGC_TITULAIRE:
        allowed = actor.is_operator or actor.is_cssi or actor.agent_id == designation.agent_id
    else:
        allowed = actor.is_operator
    if not allowed:
        raise _forbidden()
    if designation.fin is not None and _utc(designation.fin) <= now:
        raise LifecycleRefused("designation_terminee", "Cette désignation est déjà terminée")
    return _end_designation(session, actor, designation, motif, now)


def _end_designation(
    session: Session, actor: Principal, designation: Designation, motif: str, now: datetime
) -> Designation:
    designation.fin = now
    designation.motif_fin = motif
    session.add(designation)
    session.flush()
    agent = session.get(Agent, designation.agent_id)
    organisation = _organisation(session, designation.organisation_id)
    _audit(
        session,
        actor,
        "habilitations.designation.terminer",
        agent=agent,
        organisation=organisation,
        now=now,
        target=f"designation:{designation.id}",
        details={"role": designation.role, "avant": "en_cours", "apres": "terminee", "motif": motif},
    )
    if designation.role in (RGC_TITULAIRE, RGC_SUPPLEANT) and motif in RGC_NOTICE_REASONS and agent is not None:
        _rgc_notice(session, designation, motif, now)
    return designation


# Subscriptions -----------------------------------------------------------------------


def set_subscription(
    session: Session,
    actor: Principal,
    *,
    organisation_id: int,
    api: str,
    scopes: Iterable[str],
    reference: str | None = None,
    demandee_le: date | None = None,
    now: datetime,
) -> Souscription:
    """What the organisation's access form (Annexe 4) requested: the bound of its grants
    (operator or CSSI). Narrowing it does not rewrite grants: the policy checks both."""
    _require_security(actor)
    organisation = _organisation(session, organisation_id)
    _check_text("api", api, 64, required=True)
    wanted = _clean_scopes(scopes)
    existing = session.exec(
        select(Souscription)
        .where(Souscription.organisation_id == organisation_id, Souscription.api == api)
        .with_for_update()
    ).first()
    before = list(existing.scopes) if existing is not None else None
    if existing is None:
        existing = Souscription(
            organisation_id=organisation_id,
            api=api,
            scopes=wanted,
            reference=reference,
            demandee_le=demandee_le,
            created_at=now,
        )
    elif before == wanted and existing.reference == reference and existing.demandee_le == demandee_le:
        return existing
    existing.scopes = wanted
    existing.reference = reference
    existing.demandee_le = demandee_le
    session.add(existing)
    session.flush()
    _audit(
        session,
        actor,
        "habilitations.souscription.definir",
        agent=None,
        organisation=organisation,
        now=now,
        target=f"souscription:{existing.id}",
        details={"api": api, "scopes_avant": before, "scopes_apres": wanted},
    )
    return existing


# Queries other modules use -------------------------------------------------------------


def security_overrides(session: Session, organisation_code: str, since: datetime | None) -> list[AuditEvent]:
    """Security overrides (blocks by the CSSI or the operator) on an organisation's identities
    since a date: the events flagged ``details.override``, for the next review campaign."""
    query = select(AuditEvent).where(
        AuditEvent.organisation == organisation_code,
        col(AuditEvent.operation).in_(BLOCK_OPERATIONS),
    )
    if since is not None:
        query = query.where(AuditEvent.occurred_at > since)
    return list(session.exec(query.order_by(col(AuditEvent.seq))).all())


def current_rgcs(session: Session, organisation_id: int, now: datetime) -> list[Designation]:
    return [d for d in current_designations(session, organisation_id, now) if d.role in (RGC_TITULAIRE, RGC_SUPPLEANT)]


# Internals ---------------------------------------------------------------------------


def _new_technical_identity(
    session: Session,
    actor: Principal,
    client: Client,
    organisation: Organisation,
    identifiant: str,
    nom: str,
    now: datetime,
) -> Agent:
    if _agent_by_identifiant(session, client.organisation_id, client.client_id, identifiant) is not None:
        raise LifecycleRefused("agent_existant", "Ce client a déjà une identité technique de cet identifiant")
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
    _audit(
        session,
        actor,
        "habilitations.identite_technique.creer",
        agent=agent,
        organisation=organisation,
        now=now,
        details={"apres": ACTIF, "type": TECHNIQUE, "client_id": client.client_id},
    )
    return agent


def _new_grant(
    session: Session,
    actor: Principal,
    agent: Agent,
    organisation: Organisation,
    api: str,
    scopes: list[str],
    finalite: str,
    justification: str | None,
    date_fin: date | None,
    now: datetime,
) -> Habilitation:
    assert agent.id is not None
    grant = Habilitation(
        agent_id=agent.id,
        api=api,
        scopes=scopes,
        finalite=finalite,
        justification=justification,
        accordee_par=actor.agent_id,
        accordee_par_libelle=_actor_label(actor),
        accordee_le=now,
        date_fin=date_fin,
        etat=ACTIF,
        etat_depuis=now,
        updated_at=now,
    )
    session.add(grant)
    session.flush()
    _audit(
        session,
        actor,
        "habilitations.habilitation.accorder",
        agent=agent,
        organisation=organisation,
        grant=grant,
        now=now,
        details={"apres": ACTIF, "api": api, "scopes": scopes, "date_fin": date_fin.isoformat() if date_fin else None},
    )
    return grant


def _end_transition(session: Session, organisation_id: int, now: datetime) -> None:
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
        revoke_agent(session, SYSTEM_ACTOR, identity.id, motif="premiere_habilitation_nominative", now=now)


def _close_everything(session: Session, actor: Principal, agent: Agent, motif: str, now: datetime) -> None:
    organisation = _organisation(session, agent.organisation_id)
    grants = session.exec(
        select(Habilitation)
        .where(Habilitation.agent_id == agent.id, col(Habilitation.etat).in_((ACTIF, BLOQUE)))
        .with_for_update()
    ).all()
    for grant in grants:
        _move_grant(
            session, actor, grant, agent, organisation, REVOQUE, motif, "habilitations.habilitation.revoquer", now
        )
    designations = session.exec(select(Designation).where(Designation.agent_id == agent.id).with_for_update()).all()
    for designation in designations:
        if designation.fin is None or _utc(designation.fin) > now:
            _end_designation(session, actor, designation, motif, now)


def _notify_rgc_change(session: Session, agent: Agent, motif: str, now: datetime) -> None:
    """An RGC suspended for inactivity has been absent for two months: the CSSI must know."""
    for designation in _current_designations_of(session, agent, now):
        if designation.role in (RGC_TITULAIRE, RGC_SUPPLEANT):
            _rgc_notice(session, designation, motif, now)


def _rgc_notice(session: Session, designation: Designation, motif: str, now: datetime) -> None:
    organisation = _organisation(session, designation.organisation_id)
    deadline = (now + timedelta(days=CSSI_NOTICE_DAYS)).date()
    enqueue(
        session,
        topic=TOPIC_RGC_NOTICE,
        recipient="cssi",
        payload={
            "organisation": organisation.code,
            "designation_id": designation.id,
            "role": designation.role,
            "motif": motif,
            "constate_le": now.date().isoformat(),
            "a_signaler_avant": deadline.isoformat(),
        },
        idempotency_key=f"rgc-notice:{designation.id}:{motif}",
        now=now,
        organisation_id=organisation.id,
    )


def _move_agent(
    session: Session,
    actor: Principal,
    agent: Agent,
    etat: str,
    motif: str,
    operation: str,
    now: datetime,
    *,
    extra: dict[str, Any] | None = None,
    etat_motif: str | None = None,
) -> Agent:
    before = agent.etat
    agent.etat = etat
    agent.etat_motif = (etat_motif or motif)[:255]
    agent.etat_depuis = now
    _touch(session, agent, now)
    organisation = _organisation(session, agent.organisation_id)
    _audit(
        session,
        actor,
        operation,
        agent=agent,
        organisation=organisation,
        now=now,
        details={"avant": before, "apres": etat, "motif": motif, **(extra or {})},
    )
    return agent


def _move_grant(
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
    extra: dict[str, Any] | None = None,
) -> Habilitation:
    before = grant.etat
    grant.etat = etat
    grant.etat_motif = motif[:255]
    grant.etat_depuis = now
    _touch(session, grant, now)
    _audit(
        session,
        actor,
        operation,
        agent=agent,
        organisation=organisation,
        grant=grant,
        now=now,
        details={"avant": before, "apres": etat, "motif": motif, **(extra or {})},
    )
    return grant


def _touch(session: Session, row: Agent | Habilitation, now: datetime) -> None:
    row.updated_at = now
    row.version += 1
    session.add(row)
    session.flush()


def _audit(
    session: Session,
    actor: Principal,
    operation: str,
    *,
    agent: Agent | None,
    organisation: Organisation,
    now: datetime,
    grant: Habilitation | None = None,
    target: str | None = None,
    details: dict[str, Any],
) -> None:
    channel = _channel(actor)
    try:
        request_id = current_request().request_id
    except LookupError:
        request_id = f"{channel}-{uuid.uuid4().hex}"
    if target is None:
        target = f"habilitation:{grant.id}" if grant is not None else f"agent:{agent.id if agent else ''}"
    draft = AuditDraft(
        channel=channel,
        operation=operation,
        organisation=organisation.code,
        agent_id=actor.agent_id,
        habilitation_id=grant.id if grant is not None else None,
        target=target,
        details={"acteur": _actor_label(actor), **details},
    )
    append_event(session, draft, request_id=request_id, http_status=200, occurred_at=now)
    session.flush()


def _channel(actor: Principal) -> str:
    if actor.libelle == SYSTEM_ACTOR.libelle:
        return "lifecycle"
    if actor.is_command_line:
        return "cli"
    return "admin-api"


def _actor_label(actor: Principal) -> str:
    return actor.libelle or f"agent:{actor.agent_id}"


def _require_manager(actor: Principal, organisation_id: int) -> None:
    if not (actor.is_operator or actor.is_rgc_of(organisation_id)):
        raise _forbidden()


def _require_security(actor: Principal) -> None:
    if not (actor.is_operator or actor.is_cssi):
        raise LifecycleRefused(
            "role_insuffisant", "Action réservée au CSSI de France Travail ou à l'opérateur du hub", 403
        )


def _require_security_if_held(actor: Principal, etat: str) -> None:
    """A security block stays until the CSSI or the operator acts: the RGC can neither lift it
    nor get round it by revoking, deleting or editing the blocked account or grant."""
    if etat == BLOQUE:
        _require_security(actor)


def _security_revocation(agent: Agent) -> bool:
    return agent.etat == REVOQUE and (agent.etat_motif or "").startswith(SECURITY_HOLD_PREFIX)


def _require_operator(actor: Principal) -> None:
    if not actor.is_operator:
        raise LifecycleRefused("role_insuffisant", "Action réservée à l'opérateur du hub", 403)


def _require_not_self(actor: Principal, agent: Agent, verb: str) -> None:
    if actor.agent_id is not None and actor.agent_id == agent.id:
        raise LifecycleRefused(
            "separation_des_roles",
            f"Un RGC ne peut pas {verb} ses propres habilitations : un autre RGC de l'organisation doit le faire",
            403,
        )


def _require_not_deleted(agent: Agent) -> None:
    if agent.etat == SUPPRIME:
        raise LifecycleRefused("etat_incompatible", "Cet agent est supprimé")


def _forbidden() -> LifecycleRefused:
    return LifecycleRefused("role_insuffisant", "Action réservée au RGC de l'organisation ou à l'opérateur du hub", 403)


def _check_within_subscription(session: Session, agent: Agent, api: str, scopes: list[str]) -> None:
    subscription = session.exec(
        select(Souscription).where(Souscription.organisation_id == agent.organisation_id, Souscription.api == api)
    ).first()
    if subscription is None or not set(scopes) <= set(subscription.scopes):
        raise LifecycleRefused(
            "hors_souscription", "Scopes hors de la souscription de l'organisation pour cette API", 403
        )
    if agent.type == TECHNIQUE:
        client = session.exec(select(Client).where(Client.client_id == agent.client_id)).first()
        if client is None or not set(scopes) <= set(client.scopes):
            raise LifecycleRefused(
                "hors_client", "Scopes que le client de cette identité technique ne détient pas", 403
            )


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str) or not scope or len(scope) > 128 or any(c.isspace() for c in scope):
            raise LifecycleRefused("scope_invalide", "Scope invalide : un mot non vide, sans espace", 400)
        if scope not in cleaned:
            cleaned.append(scope)
    if not cleaned:
        raise LifecycleRefused("scopes_requis", "Au moins un scope est requis", 400)
    return cleaned


def _check_identifiant(identifiant: str) -> None:
    if not isinstance(identifiant, str) or not 1 <= len(identifiant) <= 100 or not identifiant.strip():
        raise LifecycleRefused("identifiant_invalide", "Identifiant d'agent invalide : 1 à 100 caractères", 400)
    if "|" in identifiant or not identifiant.isprintable():
        raise LifecycleRefused("identifiant_invalide", "Identifiant d'agent invalide : caractère interdit", 400)


def _check_statut(statut: Any) -> None:
    if statut is not None and statut not in STATUTS_EMPLOI:
        raise LifecycleRefused("statut_emploi_invalide", f"Statut d'emploi invalide ({', '.join(STATUTS_EMPLOI)})", 400)


def _check_code(code: str) -> None:
    if not isinstance(code, str) or not _CODE.match(code):
        raise LifecycleRefused(
            "motif_invalide", "Motif obligatoire : un code en minuscules (lettres, chiffres, _ . -)", 400
        )


def _check_text(name: str, value: Any, max_length: int, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_length:
        raise LifecycleRefused("champ_invalide", f"Champ {name} invalide ({max_length} caractères au plus)", 400)


def _organisation(session: Session, organisation_id: int) -> Organisation:
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise LifecycleRefused("organisation_inconnue", "Organisation inconnue", 404)
    return organisation


def _client(session: Session, client_id: str) -> Client:
    client = session.exec(select(Client).where(Client.client_id == client_id)).first()
    if client is None:
        raise LifecycleRefused("client_inconnu", "Client inconnu", 404)
    return client


def _locked(session: Session, model: type[Row], key: Any, code: str, message: str) -> Row:
    primary = getattr(model, "id")  # noqa: B009 - every lifecycle table is keyed by ``id``
    row = session.exec(select(model).where(primary == key).with_for_update()).first()
    if row is None:
        raise LifecycleRefused(code, message, 404)
    return row


def _locked_agent(session: Session, agent_id: int) -> Agent:
    return _locked(session, Agent, agent_id, "agent_inconnu", "Agent inconnu")


def _locked_grant(session: Session, habilitation_id: str) -> tuple[Habilitation, Agent, Organisation]:
    grant = _locked(session, Habilitation, habilitation_id, "habilitation_inconnue", "Habilitation inconnue")
    agent = session.get(Agent, grant.agent_id)
    assert agent is not None
    return grant, agent, _organisation(session, agent.organisation_id)


def _agent_by_identifiant(session: Session, organisation_id: int, client_id: str, identifiant: str) -> Agent | None:
    return session.exec(
        select(Agent).where(
            Agent.organisation_id == organisation_id, Agent.client_id == client_id, Agent.identifiant == identifiant
        )
    ).first()


def current_designations(session: Session, organisation_id: int, now: datetime) -> list[Designation]:
    rows = session.exec(select(Designation).where(Designation.organisation_id == organisation_id)).all()
    return [d for d in rows if _utc(d.debut) <= now and (d.fin is None or _utc(d.fin) > now)]


def _current_designations_of(session: Session, agent: Agent, now: datetime) -> list[Designation]:
    rows = session.exec(select(Designation).where(Designation.agent_id == agent.id)).all()
    return [d for d in rows if _utc(d.debut) <= now and (d.fin is None or _utc(d.fin) > now)]


def _utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
