"""Tokens of the admin APIs: issued to an agent once ProConnect has authenticated them.

They are access tokens of their own audience (``settings.admin_audience``), so a partner
client's token never opens an admin API and the other way round. ``acr`` and ``auth_time``
come from the login and let handlers demand multi-factor and recent authentication.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from api.services import Services
from relais.core.access_tokens import issue_access_token

ADMIN_CLIENT_ID = "relais-console"
ADMIN_SCOPE = "relais-admin"


def issue_admin_token(services: Services, *, agent_id: int, organisation: str, acr: str, auth_time: datetime) -> str:
    settings = services.settings
    return issue_access_token(
        services.keys,
        issuer=settings.issuer,
        audience=settings.admin_audience,
        client_id=ADMIN_CLIENT_ID,
        organisation=organisation,
        scopes=[ADMIN_SCOPE],
        now=services.clock(),
        ttl=timedelta(seconds=settings.admin_token_ttl_seconds),
        subject=f"agent:{agent_id}",
        extra_claims={"acr": acr, "auth_time": int(auth_time.timestamp())},
    )
