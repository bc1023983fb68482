"""Operational endpoints: published keys, liveness, readiness and metrics."""

from __future__ import annotations

import hmac

from connexion import request
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
    """The metrics, to the holder of the configured token only (deny by default).

    Traffic by operation and status tells an outsider who calls what and when: operators
    scrape with ``Authorization: Bearer <RELAIS_METRICS_TOKEN>`` (Prometheus'
    ``authorization.credentials_file``).
    """
    services = current_request().services
    expected = services.settings.metrics_token
    if not expected:
        return json_response(404, {"status": 404, "detail": "métriques désactivées (RELAIS_METRICS_TOKEN non défini)"})
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected.encode()):
        return json_response(
            401,
            {"status": 401, "detail": "jeton des métriques absent ou invalide"},
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    registry = services.metrics.registry
    return ConnexionResponse(status_code=200, content_type=CONTENT_TYPE_LATEST, body=generate_latest(registry))
