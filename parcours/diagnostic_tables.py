"""Table of Diagnostic argumenté v4: the usager's diagnostics (métiers recherchés)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from relais.core.tables import new_id, utcnow


class DiagnosticArgumente(SQLModel, table=True):
    """One diagnostic of an usager, in the contract's terms (camelCase in the API)."""

    __tablename__ = "diagnostic_argumente"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    usager_id: str = Field(foreign_key="usager.id", index=True, max_length=32)
    # The organisation whose agent created it; None for France Travail's own diagnostics.
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    code_typologie: str = Field(max_length=8)
    code_sous_typologie: str | None = Field(default=None, max_length=8)
    code_rome: str | None = Field(default=None, max_length=8)
    code_appellation: str | None = Field(default=None, max_length=16)
    id_metier_chiffre: str | None = Field(default=None, max_length=255)
    nom_metier: str | None = Field(default=None, max_length=255)
    statut: str = Field(default="EN_COURS", max_length=16)
    est_prioritaire: bool = False
    est_creation_partenaire: bool = True
    agent_id: str | None = Field(default=None, max_length=100)
    agent_nom: str | None = Field(default=None, max_length=100)
    agent_prenom: str | None = Field(default=None, max_length=100)
    agent_structure: str | None = Field(default=None, max_length=255)
    date_mise_a_jour: datetime = Field(default_factory=utcnow)
    date_mise_a_jour_projet: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
