"""The OAuth2 token endpoint, as France Travail's ``/connexion/oauth2/access_token``.

Only the ``client_credentials`` grant of realm ``/agent`` is served. As on the real
platform, asking for a single scope the client does not hold fails the whole request.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from connexion import request
from connexion.lifecycle import ConnexionResponse

from api.context import current_request
from api.errors import json_response, note_refusal
from api.security import RateLimited
from habilitations.clients import authenticate_client
from relais.core.access_tokens import issue_access_token
from relais.core.tables import Organisation

REALM = "/agent"
# Guessing secrets is slow anyway (argon2); this caps the attempts per client id.
TOKEN_ATTEMPTS_PER_SECOND = 10
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def generer_access_token(body: dict[str, Any] | None = None, realm: str | None = None) -> ConnexionResponse:
    form = {key: str(value) for key, value in (body or {}).items()}
    if realm != REALM:
        return _error("invalid_request", "Paramètre realm absent ou invalide : seul realm=/agent est servi")
    grant_type = form.get("grant_type", "")
    if not grant_type:
        return _error("invalid_request", "Paramètre grant_type absent")
    if grant_type != "client_credentials":
        return _error("unsupported_grant_type", "Seul le grant_type client_credentials est accepté")
    client_id, secret = _client_credentials(form)
    if not client_id or not secret:
        return _error("invalid_request", "Paramètres client_id et client_secret obligatoires")

    state = current_request()
    services = state.services
    state.audit.client_id = client_id[:64]
    decision = services.rate_limiter.hit(client_id, "/connexion", TOKEN_ATTEMPTS_PER_SECOND)
    if not decision.allowed:
        raise RateLimited(decision)
    session = state.session()
    client = authenticate_client(session, client_id, secret)
    if client is None:
        return _error("invalid_client", "Client authentication failed")
    organisation = session.get(Organisation, client.organisation_id)
    assert organisation is not None
    state.audit.organisation = organisation.code

    requested = list(dict.fromkeys(form.get("scope", "").split()))
    if not requested:
        return _error("invalid_scope", "Aucun scope demandé")
    # Legacy Pôle emploi clients (les-emplois) prefix their scopes with ``application_<id>``.
    held = {*client.scopes, f"application_{client.client_id}"}
    unknown = [scope for scope in requested if scope not in held]
    if unknown:
        return _error("invalid_scope", f"Unknown/invalid scope(s): [{', '.join(unknown)}]")

    token = issue_access_token(
        services.keys,
        issuer=services.settings.issuer,
        audience=services.settings.token_audience,
        client_id=client.client_id,
        organisation=organisation.code,
        scopes=requested,
        now=services.clock(),
        ttl=services.token_ttl,
    )
    body_out = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": services.settings.token_ttl_seconds,
        "scope": " ".join(requested),
    }
    return json_response(200, body_out, NO_STORE)


def _client_credentials(form: dict[str, str]) -> tuple[str, str]:
    """From the form (client_secret_post, France Travail's way) or HTTP Basic (RFC 6749)."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret)
    return form.get("client_id", ""), form.get("client_secret", "")


def _error(error: str, description: str) -> ConnexionResponse:
    note_refusal(f"oauth:{error}")
    return json_response(400, {"error": error, "error_description": description}, NO_STORE)
