"""Habilitations records of ``relais import``: subscriptions, agents, designations, habilitations.

They load an organisation's existing accounts at once. Agents are keyed by their
``pa-identifiant-agent`` value within their organisation (and client, for a technical
identity). The import acts as the hub operator: the ``habilitations.lifecycle`` functions
check the same rules as for the admin API and write one audit event per change (none when a
record is already as given), on the ``cli`` channel.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from audit.journal import JournalRecorder
from habilitations import lifecycle
from habilitations.lifecycle import LifecycleRefused
from habilitations.models import (
    ACTIF,
    HUMAIN,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    TECHNIQUE,
    Agent,
    Habilitation,
    Souscription,
)
from habilitations.roles import Principal
from parcours.alimentation import Outcome
from relais.core.refusals import RefusalKind
from relais.core.tables import Client

_OPERATOR = Principal.command_line()
# The state changes write their audit events through the journal, under one request id per
# record (the ``cli`` channel's, as for the operator's commands).
_RECORDER = JournalRecorder()


def _request_id() -> str:
    return f"cli-{uuid.uuid4().hex}"


def import_subscription(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    existing = session.exec(
        select(Souscription).where(Souscription.organisation_id == organisation_id, Souscription.api == data["api"])
    ).first()
    before = (list(existing.scopes), existing.reference, existing.demandee_le) if existing is not None else None
    subscription = lifecycle.set_subscription(
        session,
        _OPERATOR,
        organisation_id=organisation_id,
        api=data["api"],
        scopes=data["scopes"],
        reference=data.get("reference"),
        demandee_le=_date(data.get("demandee_le")),
        now=now,
        recorder=_RECORDER,
        request_id=_request_id(),
    )
    if before is None:
        return "created"
    after = (list(subscription.scopes), subscription.reference, subscription.demandee_le)
    return "unchanged" if after == before else "updated"


def import_agent(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    technical = data.get("type", HUMAIN) == TECHNIQUE
    client_id = data.get("client_id", "") if technical else ""
    if technical != bool(data.get("client_id")):
        raise LifecycleRefused(
            RefusalKind.INVALID, "client_id", "champ client_id : requis pour une identité technique, et pour elle seule"
        )
    existing = _imported_agent(session, organisation_id, client_id, data["identifiant"])
    if technical:
        if existing is None:
            client = session.exec(select(Client).where(Client.client_id == client_id)).first()
            if client is None or client.organisation_id != organisation_id:
                raise LifecycleRefused(
                    RefusalKind.UNKNOWN, "client_inconnu", "champ client_id : client inconnu dans cette organisation"
                )
            lifecycle.create_technical_identity(
                session,
                _OPERATOR,
                client_id=client_id,
                nom=data["nom"],
                identifiant=data["identifiant"],
                now=now,
                recorder=_RECORDER,
                request_id=_request_id(),
            )
            return "created"
        changes = {"nom": data["nom"]}
    else:
        fields = ("nom", "prenom", "email", "sub", "siret", "statut_emploi")
        if existing is None:
            lifecycle.create_agent(
                session,
                _OPERATOR,
                organisation_id=organisation_id,
                identifiant=data["identifiant"],
                **{name: data[name] for name in fields if name in data},
                now=now,
                recorder=_RECORDER,
                request_id=_request_id(),
            )
            return "created"
        changes = {name: data[name] for name in fields if name in data}
    assert existing.id is not None
    version = existing.version
    lifecycle.update_agent(
        session, _OPERATOR, existing.id, changes=changes, now=now, recorder=_RECORDER, request_id=_request_id()
    )
    return "unchanged" if existing.version == version else "updated"


def import_designation(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    agent = _imported_agent(session, organisation_id, "", data["agent"])
    if agent is None or agent.id is None:
        raise LifecycleRefused(
            RefusalKind.UNKNOWN, "agent_inconnu", "champ agent : agent inconnu (à déclarer plus haut dans le fichier)"
        )
    acte = _date(data.get("acte_engagement_le"))
    for current in lifecycle.current_designations(session, organisation_id, now):
        if current.agent_id == agent.id and current.role == data["role"]:
            if current.acte_engagement_le == acte or data["role"] not in (RGC_TITULAIRE, RGC_SUPPLEANT):
                return "unchanged"
            assert current.id is not None
            request_id = _request_id()
            lifecycle.end_designation(
                session, _OPERATOR, current.id, motif="import", now=now, recorder=_RECORDER, request_id=request_id
            )
            lifecycle.designate(
                session,
                _OPERATOR,
                organisation_id=organisation_id,
                agent_id=agent.id,
                role=data["role"],
                acte_engagement_le=acte,
                now=now,
                recorder=_RECORDER,
                request_id=request_id,
            )
            return "updated"
    lifecycle.designate(
        session,
        _OPERATOR,
        organisation_id=organisation_id,
        agent_id=agent.id,
        role=data["role"],
        acte_engagement_le=acte,
        now=now,
        recorder=_RECORDER,
        request_id=_request_id(),
    )
    return "created"


def import_habilitation(session: Session, organisation_id: int, data: Mapping[str, Any], now: datetime) -> Outcome:
    agent = _imported_agent(session, organisation_id, data.get("client_id", ""), data["agent"])
    if agent is None or agent.id is None:
        raise LifecycleRefused(
            RefusalKind.UNKNOWN, "agent_inconnu", "champ agent : agent inconnu (à déclarer plus haut dans le fichier)"
        )
    wanted = {
        "scopes": list(dict.fromkeys(data["scopes"])),
        "finalite": data["finalite"],
        "justification": data.get("justification"),
        "date_fin": _date(data.get("date_fin")),
    }
    existing = session.exec(
        select(Habilitation).where(
            Habilitation.agent_id == agent.id, Habilitation.api == data["api"], Habilitation.etat == ACTIF
        )
    ).first()
    request_id = _request_id()
    if existing is not None:
        if all(getattr(existing, name) == value for name, value in wanted.items()):
            return "unchanged"
        lifecycle.revoke_habilitation(
            session, _OPERATOR, existing.id, motif="import", now=now, recorder=_RECORDER, request_id=request_id
        )
    lifecycle.grant_habilitation(
        session,
        _OPERATOR,
        agent_id=agent.id,
        api=data["api"],
        now=now,
        recorder=_RECORDER,
        request_id=request_id,
        **wanted,
    )
    return "created" if existing is None else "updated"


def _imported_agent(session: Session, organisation_id: int, client_id: str, identifiant: str) -> Agent | None:
    return session.exec(
        select(Agent).where(
            Agent.organisation_id == organisation_id, Agent.client_id == client_id, Agent.identifiant == identifiant
        )
    ).first()


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None
