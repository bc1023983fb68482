"""Tables of security incidents raised by the detection rules, and the search indexes of the journal.

An incident is opened by ``audit.detection`` when a rule fires; security officers move it
through ``OUVERT → QUALIFIE → NOTIFIE → CLOS`` (``audit.incidents``). Its evidence is the list of
audit event ids that made the rule fire. The detector's progress through the journal is one
row (``DetectorState``): events after its watermark have not been evaluated yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from audit.models import AuditEvent
from relais.core.tables import new_id, utcnow

OUVERT = "OUVERT"
QUALIFIE = "QUALIFIE"
NOTIFIE = "NOTIFIE"
CLOS = "CLOS"
ETATS_INCIDENT = (OUVERT, QUALIFIE, NOTIFIE, CLOS)
# Closing is allowed from every open state: a false positive is closed once qualified as such.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    OUVERT: (QUALIFIE, CLOS),
    QUALIFIE: (NOTIFIE, CLOS),
    NOTIFIE: (CLOS,),
    CLOS: (),
}
# How serious the security officer judges it; the detector opens every incident at MOYENNE
# until someone qualifies it.
FAIBLE = "faible"
MOYENNE = "moyenne"
ELEVEE = "elevee"
CRITIQUE = "critique"
GRAVITES = (FAIBLE, MOYENNE, ELEVEE, CRITIQUE)

# Search and detection read the journal by usager, by organisation and time, and by actor and
# time; paging is by id. Declared here, on the journal's own table, so Alembic sees them.
Index("ix_audit_event_usager_nir_index_id", AuditEvent.usager_nir_index, AuditEvent.id)  # type: ignore[arg-type]
Index("ix_audit_event_usager_id_id", AuditEvent.usager_id, AuditEvent.id)  # type: ignore[arg-type]
Index("ix_audit_event_organisation_occurred_at", AuditEvent.organisation, AuditEvent.occurred_at)  # type: ignore[arg-type]
Index("ix_audit_event_client_id_occurred_at", AuditEvent.client_id, AuditEvent.occurred_at)  # type: ignore[arg-type]
Index("ix_audit_event_agent_identifiant_occurred_at", AuditEvent.agent_identifiant, AuditEvent.occurred_at)  # type: ignore[arg-type]
Index("ix_audit_event_occurred_at", AuditEvent.occurred_at)  # type: ignore[arg-type]


class Incident(SQLModel, table=True):
    """A security incident: what fired, about whom (codes, never names), and its 48-hour clock."""

    __tablename__ = "audit_incident"
    __table_args__ = (UniqueConstraint("cle_ouverte"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    regle: str = Field(max_length=64, index=True)
    etat: str = Field(default=OUVERT, max_length=16, index=True)
    # The organisation whose security officer handles it (code); None when none is known.
    organisation: str | None = Field(default=None, max_length=32, index=True)
    # What the rule is about: "agent:<id>", "agent:<org>/<client>/<identifiant>", "client:<id>"...
    sujet: str = Field(max_length=255)
    # French, value-free summary ("12 usagers distincts lus en 600 s").
    resume: str = Field(max_length=500)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    detecte_le: datetime = Field(default_factory=utcnow, index=True)
    # Convention art. 5: the other party's DPO is informed within 48 hours of the discovery.
    echeance_notification: datetime
    qualifie_le: datetime | None = None
    notifie_le: datetime | None = None
    clos_le: datetime | None = None
    # "<rule>|<subject>" while the incident is not closed, so a rule firing again on the same
    # subject adds evidence to the open incident instead of opening another; None once closed.
    cle_ouverte: str | None = Field(default=None, max_length=320)
    nombre_preuves: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0
    gravite: str = Field(default=MOYENNE, max_length=16)
    # The agent (record id) of the organisation in charge of handling it; None until assigned.
    assigne_agent_id: int | None = Field(default=None, index=True)


class IncidentPreuve(SQLModel, table=True):
    """One audit event that made a rule fire (the evidence of an incident)."""

    __tablename__ = "audit_incident_preuve"

    incident_id: str = Field(foreign_key="audit_incident.id", primary_key=True, max_length=32)
    audit_event_id: int = Field(primary_key=True)
    ajoute_le: datetime = Field(default_factory=utcnow)


class IncidentTransition(SQLModel, table=True):
    """A change of state of an incident, with who made it and their comment."""

    __tablename__ = "audit_incident_transition"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="audit_incident.id", index=True, max_length=32)
    etat_avant: str | None = Field(default=None, max_length=16)
    etat_apres: str = Field(max_length=16)
    le: datetime = Field(default_factory=utcnow)
    # The agent who made it; None for the detector (opening) and the operator's command line.
    agent_id: int | None = None
    auteur: str = Field(max_length=128)
    commentaire: str = Field(max_length=2000)


class IncidentNotification(SQLModel, table=True):
    """A record that someone was told of an incident (convention art. 5: the other party's DPO).

    Written by the security officer who notified, with whom and when it was done (which may be
    earlier than when it is recorded here).
    """

    __tablename__ = "audit_incident_notification"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="audit_incident.id", index=True, max_length=32)
    # Whom, in words ("CSSI France Travail", "DPO du Département de la Gironde").
    destinataire: str = Field(max_length=200)
    notifie_le: datetime
    enregistre_le: datetime = Field(default_factory=utcnow)
    agent_id: int | None = None
    auteur: str = Field(max_length=128)


class DetectorState(SQLModel, table=True):
    """How far the detector has evaluated the journal (single row, locked while it runs)."""

    __tablename__ = "audit_detector_state"

    id: int = Field(default=1, primary_key=True)
    # Highest audit event id evaluated: each event is evaluated once.
    watermark: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
