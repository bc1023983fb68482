"""Which France Travail application a call goes out with: the caller's organisation's own.

France Travail checks a usager's attachment (R002) against the habilitation of the application
that calls. If every département behind one Relais shared one application, each would reach
the others' usagers through it. So with ``RELAIS_FT_CREDENTIALS_FILE`` each organisation calls
with its own credentials, and an organisation without any is refused before anything is sent
(deny by default). Without the file, the single ``RELAIS_FT_CLIENT_ID``/``SECRET`` application
serves every organisation: a deployment for one département only. The file::

    {"CD33": {"client_id": "PAR_cd33_...", "client_secret_env": "FT_SECRET_CD33"},
     "CD93": {"client_id": "PAR_cd93_...", "client_secret": "..."}}

(``client_secret_env`` names an environment variable, to keep secrets out of the file.)
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapters.france_travail.errors import GatewayRefused
from adapters.france_travail.tokens import TokenProvider
from relais.core.refusals import RefusalKind


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str


def load_credentials(path: Path) -> dict[str, Credentials]:
    """Organisation code -> credentials; raises ValueError (without any secret) when unusable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"RELAIS_FT_CREDENTIALS_FILE illisible ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise ValueError("RELAIS_FT_CREDENTIALS_FILE : objet JSON attendu (code d'organisation -> identifiants)")
    credentials = {}
    for code, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("client_id"), str):
            raise ValueError(f"RELAIS_FT_CREDENTIALS_FILE : client_id absent pour {code}")
        secret = entry.get("client_secret")
        if "client_secret_env" in entry:
            secret = os.environ.get(str(entry["client_secret_env"]))
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"RELAIS_FT_CREDENTIALS_FILE : secret absent pour {code}")
        credentials[str(code)] = Credentials(entry["client_id"], secret)
    return credentials


class TokenProviders:
    """One ``TokenProvider`` (and so one token cache) per France Travail application."""

    def __init__(
        self,
        factory: Callable[[Credentials], TokenProvider],
        *,
        per_organisation: dict[str, Credentials] | None,
        default: Credentials | None,
    ) -> None:
        self._factory = factory
        self._per_organisation = per_organisation
        self._default = default
        self._providers: dict[Credentials, TokenProvider] = {}
        self._lock = threading.Lock()

    def for_organisation(self, organisation: str) -> TokenProvider:
        if self._per_organisation is not None:
            credentials = self._per_organisation.get(organisation)
        else:
            credentials = self._default
        if credentials is None:
            raise GatewayRefused(
                RefusalKind.FORBIDDEN,
                "ACCES_NON_AUTORISE",
                "Accès non autorisé : aucune habilitation France Travail n'est configurée pour votre organisation",
                reason="gateway_sans_habilitation",
            )
        with self._lock:
            provider = self._providers.get(credentials)
            if provider is None:
                provider = self._providers[credentials] = self._factory(credentials)
            return provider


def token_providers(
    http: httpx.Client,
    *,
    token_url: str,
    realm: str,
    margin_seconds: float,
    credentials_file: Path | None,
    default: Credentials | None,
) -> TokenProviders:
    def factory(credentials: Credentials) -> TokenProvider:
        return TokenProvider(
            http,
            token_url=token_url,
            realm=realm,
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            margin_seconds=margin_seconds,
        )

    per_organisation = load_credentials(credentials_file) if credentials_file is not None else None
    return TokenProviders(factory, per_organisation=per_organisation, default=default)
