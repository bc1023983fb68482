"""Operational endpoints: published keys, liveness, readiness and metrics."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.context import current_request
from api.errors import json_response
from relais.core.access_tokens import jwks_document


def publier_jwks() -> ConnexionResponse:
    services = current_request().services
    document = jwks_document(services.keys, services.clock(), services.token_ttl)
    return json_response(200, document, {"Cache-Control": "public, max-age=300"})


def verifier_vie() -> ConnexionResponse:
    return json_response(200, {"status": "ok"})


def verifier_disponibilite() -> ConnexionResponse:
    services = current_request().services
    checks = {"database": "ok", "keys": "ok"}
    try:
        with services.database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        checks["database"] = "indisponible"
    try:
        services.keys.current_signing_key  # noqa: B018  (raises when no key can sign)
    except Exception:
        checks["keys"] = "indisponible"
    ready = all(value == "ok" for value in checks.values())
    return json_response(200 if ready else 503, {"status": "ok" if ready else "indisponible", "checks": checks})


def exposer_metriques() -> ConnexionResponse:
    registry = current_request().services.metrics.registry
    return ConnexionResponse(status_code=200, content_type=CONTENT_TYPE_LATEST, body=generate_latest(registry))
