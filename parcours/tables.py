"""Tables of the parcours domain: usagers, their attachments, and the parcours records.

Personal data columns are named for what they hold: the NIR is only ever stored encrypted
(``nir_chiffre``) and looked up through its keyed blind index (``nir_index``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from relais.core.tables import new_id, utcnow


class Usager(SQLModel, table=True):
    __tablename__ = "usager"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    numero_france_travail: str = Field(unique=True, index=True, max_length=11)
    # Not unique: two records sharing a NIR is exactly the S003 "Plusieurs usagers" case.
    # None for an usager known only by its numéro France Travail.
    nir_index: str | None = Field(default=None, index=True, max_length=64)
    nir_chiffre: str | None = Field(default=None, max_length=512)
    date_naissance: date = Field(index=True)
    civilite: str | None = Field(default=None, max_length=16)
    nom: str = Field(max_length=255)
    prenom: str = Field(max_length=255)
    nom_correspondance: str | None = Field(default=None, max_length=255)
    prenom_correspondance: str | None = Field(default=None, max_length=255)
    # "O" when France Travail certified the identity, "N" otherwise.
    top_identite_certifiee: str = Field(default="N", max_length=1)
    adresses: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    emails: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    telephones: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The ``m_contrat`` object of Statut usager, None when the usager has no registration.
    contrat: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class UsagerOrganisation(SQLModel, table=True):
    """An explicit attachment of an usager to an organisation, beyond its territory."""

    __tablename__ = "usager_organisation"

    usager_id: str = Field(foreign_key="usager.id", primary_key=True, max_length=32)
    organisation_id: int = Field(foreign_key="organisation.id", primary_key=True)


# Parcours (issue: Orientation, Activités, Rendez-vous, Contrat d'engagement, Sanctions) ---------
#
# Rows are written only by the reference store's domain rules (adapters/reference_store), by
# the producer feed and by ``relais import``, which all go through the same functions. Every
# row whose state moves carries a ``version`` bumped on each transition: a transition reads
# the row locked (PostgreSQL) or inside the write transaction (SQLite) and refuses to move a
# row whose state changed under it, so two agents never both decide the same thing.


class Orientation(SQLModel, table=True):
    """An orientation of an usager, as Orientation usager v1 shows it (snake_case fields)."""

    __tablename__ = "orientation"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    usager_id: str = Field(foreign_key="usager.id", index=True, max_length=32)
    parcours: str | None = Field(default=None, max_length=8)  # PED, PSO, PSP, IND
    organisme: str | None = Field(default=None, max_length=8)  # CD, FT, ML, CE, DCD, IND
    structure: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    organisme_decision: str | None = Field(default=None, max_length=8)
    structure_decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    statut: str = Field(max_length=16)  # PRECONISE, DECIDE
    etat: str = Field(max_length=16, index=True)  # BROUILLON, EN_ATTENTE, OUVERT, CLOTURE
    origine: str | None = Field(default=None, max_length=64)
    criteres: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    agent_creation: str | None = Field(default=None, max_length=100)
    agent_derniere_modification: str | None = Field(default=None, max_length=100)
    date_entree_parcours: date | None = None
    date_sortie_parcours: date | None = None
    motif_sortie_parcours: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0


class Activite(SQLModel, table=True):
    """An operational activity on a structure's to-do list (Activités opérationnelles)."""

    __tablename__ = "activite"

    # ``identifiantActivite``.
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    code_activite: str = Field(max_length=16, index=True)  # ACT382, ACT380, ACT366...
    code_famille: str = Field(max_length=16)  # INSEA, MSACC, GLI100
    code_domaine: str = Field(max_length=3)
    # The structure whose list shows it: an organisation only ever sees its own activities.
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    usager_id: str = Field(foreign_key="usager.id", index=True, max_length=32)
    # What the activity is about, e.g. "orientation:<id>" or "consequence:<id>"; the domain
    # closes activities by subject when the matching call is made.
    sujet: str = Field(max_length=128, index=True)
    attributs: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    date_creation: datetime = Field(default_factory=utcnow)
    date_echeance: date = Field(index=True)
    date_echeance_proche: date | None = None
    # None while open. Closed activities stay, as evidence of what was done and when.
    closed_at: datetime | None = Field(default=None, index=True)
    closed_by: str | None = Field(default=None, max_length=128)


class RendezVous(SQLModel, table=True):
    """A partner appointment (Rendez-vous partenaire v1, camelCase in the contract)."""

    __tablename__ = "rendez_vous"

    # Kept as given when imported, so a département migrating from its editor keeps its ids.
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    usager_id: str = Field(foreign_key="usager.id", index=True, max_length=32)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    date: datetime = Field(index=True)
    duree: int | None = None
    motif: str = Field(max_length=8)  # ACC, ORI, AUT
    statut: str = Field(max_length=16)  # PRIS, EFFECTUE, MODIFIE, ABSENT, ANNULE
    modalite_contact: str | None = Field(default=None, max_length=16)
    type_reception: str | None = Field(default=None, max_length=8)
    initiateur: str | None = Field(default=None, max_length=16)
    organisme: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    interlocuteur: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    adresse: str | None = Field(default=None, max_length=255)
    libelle_adresse: str | None = Field(default=None, max_length=255)
    information: str | None = Field(default=None, max_length=2000)
    telephone_contact_usager: str | None = Field(default=None, max_length=32)
    theme: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0


class ContratEngagement(SQLModel, table=True):
    """The usager's contrat d'engagement: one current contract per usager."""

    __tablename__ = "contrat_engagement"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    usager_id: str = Field(foreign_key="usager.id", unique=True, index=True, max_length=32)
    etat: str = Field(max_length=16)  # A_SIGNER, SIGNE, REFUSE, SUSPENDU, CLOTURE
    # The state a suspended contract returns to when the usager registers again.
    etat_avant_suspension: str | None = Field(default=None, max_length=16)
    organisme: str | None = Field(default=None, max_length=8)
    engagements: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    plan_action: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Target intensity of accompaniment, in hours per week.
    intensite_hebdomadaire: int | None = None
    date_signature: datetime | None = None
    date_refus: datetime | None = None
    date_suspension: date | None = None
    date_cloture: date | None = None
    # {nom, prenom, identifiant} of the agent who recorded the signature or refusal.
    agent: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0


class ConsequenceSanction(SQLModel, table=True):
    """One consequence (suspension, suppression, levée...) of a manquement: what partners act on."""

    __tablename__ = "consequence_sanction"

    # ``identifiantConsequenceSanction`` (= ``identifiantSanction``), kept as given on import.
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    usager_id: str = Field(foreign_key="usager.id", index=True, max_length=32)
    # The département that decides ("FT propose, le CD décide").
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    origine: str = Field(max_length=16)  # FT (proposal) or PARTENAIRE (decisionSanctionRSAPartenaire)
    # The manquement it belongs to: nature (N65...), rang (R1, R2...), date, free detail.
    manquement: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    type_consequence: str = Field(max_length=32)  # SUSP_RSA, SUPP_RSA, LEVEE_SUSP_RSA...
    modalite_proposee: str | None = Field(default=None, max_length=1)  # M (euros) or P (rate)
    montant_propose: float | None = None
    duree_proposee: int | None = None
    etat: str = Field(max_length=32, index=True)
    type_consequence_validee: str | None = Field(default=None, max_length=32)
    modalite_validee: str | None = Field(default=None, max_length=1)
    montant_valide: float | None = None
    duree_validee: int | None = None
    date_notification_decision: date | None = None
    motif_evenement: str | None = Field(default=None, max_length=255)
    radiation_demandee_at: datetime | None = None
    # Decision due date (15 days from the proposal).
    date_echeance: date | None = None
    # Every event applied: {typeEvenement, dateEvenement, agent, enregistreLe}.
    historique: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0
