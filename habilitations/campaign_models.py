"""Tables of the yearly review campaigns (issue #4, convention Annexe 1 art. 5).

A campaign holds one item per (agent, habilitation) of the organisation, with the evidence
seen when it was opened, the RGC's decision and, once applied, the remediation's outcome.
The closed campaign's report is kept byte for byte, so that the hash recorded in the audit
trail can be checked against any later download.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from relais.core.tables import new_id, utcnow

# Campaign states.
OUVERTE = "ouverte"
# The deadline passed: unanswered items were revoked; the RGC still signs the closure.
ECHUE = "echue"
CLOTUREE = "cloturee"
ETATS_CAMPAGNE = (OUVERTE, ECHUE, CLOTUREE)

# Decisions on an item.
MAINTENIR = "maintenir"
REVOQUER = "revoquer"
MAINTENIR_JUSQU_AU = "maintenir_jusqu_au"
REDUIRE = "reduire"
DECISIONS = (MAINTENIR, REVOQUER, MAINTENIR_JUSQU_AU, REDUIRE)

# Remediation states: what applying a decision did.
A_APPLIQUER = "a_appliquer"
APPLIQUEE = "appliquee"
SANS_OBJET = "sans_objet"  # nothing to change (kept, or already revoked meanwhile)
EN_ECHEC = "en_echec"  # refused by the lifecycle rules: the code says why; to be handled by hand
ETATS_REMEDIATION = (A_APPLIQUER, APPLIQUEE, SANS_OBJET, EN_ECHEC)

# Report formats, each kept with its SHA-256.
FORMATS_RAPPORT = ("json", "csv", "html")


class CampagneRevue(SQLModel, table=True):
    """A review of every habilitation of one organisation, opened with a deadline."""

    __tablename__ = "campagne_revue"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    etat: str = Field(default=OUVERTE, max_length=16, index=True)
    # Unanswered items are revoked once this day is over (calendar day in France).
    date_limite: date
    ouverte_par: int | None = Field(default=None, foreign_key="agent.id")
    ouverte_par_libelle: str = Field(max_length=128)
    ouverte_le: datetime = Field(default_factory=utcnow)
    echue_le: datetime | None = None
    cloturee_par: int | None = Field(default=None, foreign_key="agent.id")
    cloturee_par_libelle: str | None = Field(default=None, max_length=128)
    cloturee_le: datetime | None = None
    version: int = 0


class CampagneElement(SQLModel, table=True):
    """One (agent, habilitation) under review: evidence, decision and remediation."""

    __tablename__ = "campagne_element"
    __table_args__ = (UniqueConstraint("campagne_id", "habilitation_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    campagne_id: str = Field(foreign_key="campagne_revue.id", index=True, max_length=32)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    habilitation_id: str = Field(foreign_key="habilitation.id", index=True, max_length=32)
    # Evidence as seen at opening: last use per scope, last login, grant age, anomaly flags.
    preuves: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    decision: str | None = Field(default=None, max_length=24)
    decision_date_fin: date | None = None
    decision_scopes: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    commentaire: str | None = Field(default=None, max_length=2000)
    decidee_par: int | None = Field(default=None, foreign_key="agent.id")
    decidee_par_libelle: str | None = Field(default=None, max_length=128)
    decidee_le: datetime | None = None
    remediation: str | None = Field(default=None, max_length=16)
    # A code (never a value) when the remediation failed or had nothing to do.
    remediation_code: str | None = Field(default=None, max_length=64)
    remediation_le: datetime | None = None


class CampagneRapport(SQLModel, table=True):
    """The closed campaign's report in one format, with the hash recorded in the audit trail."""

    __tablename__ = "campagne_rapport"
    __table_args__ = (UniqueConstraint("campagne_id", "format"),)

    id: int | None = Field(default=None, primary_key=True)
    campagne_id: str = Field(foreign_key="campagne_revue.id", index=True, max_length=32)
    format: str = Field(max_length=8)
    contenu: str = Field(sa_column=Column(Text, nullable=False))
    sha256: str = Field(max_length=64)
    cree_le: datetime = Field(default_factory=utcnow)
