"""The gateway's one table: which upstream ``jetonUsager`` stands behind a Relais jeton.

A partner never sees France Travail's jeton: Relais hands out its own (bound to the client,
see ``relais/core/jeton.py``) naming the row id below, and keeps the upstream jeton here,
encrypted, bound to the same client. A row outlives its Relais jeton by nothing: it is
deleted once expired.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from relais.core.tables import new_id, utcnow


class GatewayJeton(SQLModel, table=True):
    __tablename__ = "gateway_jeton"

    # The ``ref`` inside the Relais jeton (and the audit event's usager_id).
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    client_id: str = Field(max_length=64, index=True)
    # AES-256-GCM (relais.core.personal_data.encrypt_field); its size is France Travail's business.
    jeton_chiffre: str = Field(sa_column=Column(Text, nullable=False))
    # Blind index of the NIR searched for, when known, for the audit of later calls.
    nir_index: str | None = Field(default=None, max_length=64)
    expires_at: datetime = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
