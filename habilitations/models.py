"""Tables of the habilitations module: agents, their grants, RGC designations, subscriptions.

Deny by default: an agent reaches beneficiary data only through an ``active`` habilitation
of an ``active`` agent, for scopes within its organisation's subscription. Every state
change is written by the domain's state-change modules (``agents``, ``agent_states``,
``grants``, ``designations``, ``subscriptions``, ``transitional``) and yields exactly one
audit event.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from relais.core.tables import new_id, utcnow

# States shared by accounts and grants (issue #4): each transition is audited.
ACTIF = "actif"
SUSPENDU_INACTIVITE = "suspendu_inactivite"
BLOQUE = "bloque"  # security action by France Travail's CSSI or the hub operator, with a reason
REVOQUE = "revoque"  # departure or change of function
SUPPRIME = "supprime"
ETATS = (ACTIF, SUSPENDU_INACTIVITE, BLOQUE, REVOQUE, SUPPRIME)

HUMAIN = "humain"
TECHNIQUE = "technique"  # a batch identity (``pa-identifiant-agent: BATCH``) bound to one client

# The transitional technical identity of a client that existed before enforcement (see
# ``habilitations.transitional``): a partner call whose pa-identifiant-agent matches no agent
# is made under it while it is active. No one else may take this identifiant.
TRANSITION_IDENTIFIANT = "*"
TRANSITION_FINALITE = "transition"

# Roles held through a designation. Being RGC grants no data access by itself.
RGC_TITULAIRE = "rgc_titulaire"
RGC_SUPPLEANT = "rgc_suppleant"
RSSI = "rssi"  # the organisation's security officer: reads its own organisation's audit trail
CSSI = "cssi"  # France Travail's security officer: every organisation (FT organisations only)
OPERATEUR = "operateur"  # the hub operator
# The organisation's integrator: its connectors and CSV imports, never beneficiary data pages.
INTEGRATEUR = "integrateur"
ROLES = (RGC_TITULAIRE, RGC_SUPPLEANT, RSSI, CSSI, OPERATEUR, INTEGRATEUR)

# Who may be an RGC: the organisation's own civil servants or contract staff (Annexe 1).
STATUTS_EMPLOI = ("fonctionnaire", "contractuel", "prestataire", "interimaire")
STATUTS_ELIGIBLES_RGC = ("fonctionnaire", "contractuel")


class Agent(SQLModel, table=True):
    """A person (identity from ProConnect) or a technical identity of one client."""

    __tablename__ = "agent"
    __table_args__ = (UniqueConstraint("organisation_id", "client_id", "identifiant"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    # The ``pa-identifiant-agent`` value the organisation's software sends for this agent.
    identifiant: str = Field(max_length=100)
    type: str = Field(default=HUMAIN, max_length=16)
    # "" for a person (who may call through any client of the organisation); the client's
    # id for a technical identity, which acts only through that client.
    client_id: str = Field(default="", max_length=64)
    # ProConnect subject, set on first login (or at import when known).
    sub: str | None = Field(default=None, unique=True, max_length=255)
    email: str | None = Field(default=None, max_length=255)
    nom: str = Field(max_length=100)
    prenom: str = Field(default="", max_length=100)
    siret: str | None = Field(default=None, max_length=14)
    statut_emploi: str | None = Field(default=None, max_length=16)
    etat: str = Field(default=ACTIF, max_length=24, index=True)
    etat_motif: str | None = Field(default=None, max_length=255)
    etat_depuis: datetime = Field(default_factory=utcnow)
    derniere_connexion: datetime | None = None
    derniere_connexion_acr: str | None = Field(default=None, max_length=128)
    # Last successful login with an accepted acr, or last call made for the agent.
    derniere_activite: datetime | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0


class Habilitation(SQLModel, table=True):
    """A grant: one agent, one API (or tool), the scopes it may use there, and why."""

    __tablename__ = "habilitation"

    # Recorded in every audit event of a call made under it.
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    # The API's served name, e.g. "rechercher-usager-v2" (its spec file's stem).
    api: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    finalite: str = Field(max_length=255)
    justification: str | None = Field(default=None, max_length=2000)
    # The agent who granted it; None when granted by the hub operator's CLI or an import.
    accordee_par: int | None = Field(default=None, foreign_key="agent.id")
    accordee_par_libelle: str = Field(max_length=128)
    accordee_le: datetime = Field(default_factory=utcnow)
    date_fin: date | None = None
    etat: str = Field(default=ACTIF, max_length=24, index=True)
    etat_motif: str | None = Field(default=None, max_length=255)
    etat_depuis: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0


class Souscription(SQLModel, table=True):
    """What an organisation requested in its access form (Annexe 4): the bound of its grants."""

    __tablename__ = "souscription"
    __table_args__ = (UniqueConstraint("organisation_id", "api"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    api: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reference: str | None = Field(default=None, max_length=128)
    demandee_le: date | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Designation(SQLModel, table=True):
    """A role held by an agent for an organisation (RGC titular or deputy, RSSI, CSSI, operator, integrator)."""

    __tablename__ = "designation"

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    role: str = Field(max_length=24)
    # Date of the RGC's commitment act (acte d'engagement), required for RGC roles.
    acte_engagement_le: date | None = None
    debut: datetime = Field(default_factory=utcnow)
    # None while the designation holds.
    fin: datetime | None = None
    motif_fin: str | None = Field(default=None, max_length=255)
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
