"""Tokens of the admin APIs: issued to an agent once ProConnect has authenticated them.

They are access tokens of their own audience (``settings.admin_audience``), so a partner
client's token never opens an admin API and the other way round. ``acr`` and ``auth_time``
come from the login and let handlers demand multi-factor and recent authentication. Their
subject names the agent: ``agent:<id>``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from relais.core.access_tokens import InvalidAccessToken, issue_access_token
from relais.core.config import Settings
from relais.core.keys import KeySet

ADMIN_CLIENT_ID = "relais-console"
ADMIN_SCOPE = "relais-admin"
_SUBJECT_PREFIX = "agent"


def issue_admin_token(
    keys: KeySet,
    settings: Settings,
    *,
    agent_id: int,
    organisation: str,
    acr: str,
    auth_time: datetime,
    now: datetime,
) -> str:
    return issue_access_token(
        keys,
        issuer=settings.issuer,
        audience=settings.admin_audience,
        client_id=ADMIN_CLIENT_ID,
        organisation=organisation,
        scopes=[ADMIN_SCOPE],
        now=now,
        ttl=timedelta(seconds=settings.admin_token_ttl_seconds),
        subject=f"{_SUBJECT_PREFIX}:{agent_id}",
        extra_claims={"acr": acr, "auth_time": int(auth_time.timestamp())},
    )


def admin_agent_id(claims: dict[str, Any]) -> int:
    """The agent a verified admin token was issued to; ``InvalidAccessToken`` for any other subject."""
    prefix, _, number = str(claims["sub"]).partition(":")
    if prefix != _SUBJECT_PREFIX or not number.isdigit():
        raise InvalidAccessToken("bad_subject")
    return int(number)
