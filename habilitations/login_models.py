"""Tables of the ProConnect agent login: pending login attempts and the SIRET directory.

A login attempt keeps what the callback must find again (``nonce``, PKCE verifier) under the
``state`` the browser carries. It is single use and short-lived, so a replayed or forged
``state`` finds nothing to finish. ``state`` is stored hashed: a read of the table does not
give anyone a valid callback.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from relais.core.tables import utcnow


class LoginAttempt(SQLModel, table=True):
    __tablename__ = "login_attempt"

    # SHA-256 (hex) of the ``state`` sent to ProConnect.
    state_hash: str = Field(primary_key=True, max_length=64)
    nonce: str = Field(max_length=128)
    code_verifier: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    # Set when a callback consumed it, whatever came of the login.
    used_at: datetime | None = None


class OrganisationSiret(SQLModel, table=True):
    """Which organisation an establishment (SIRET, as ProConnect sends it) belongs to.

    An agent's first login is matched by e-mail among the agents of that organisation only.
    """

    __tablename__ = "organisation_siret"

    siret: str = Field(primary_key=True, min_length=14, max_length=14)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
