"""The app factory: one connexion AsyncApp serving every spec in ``specs/``."""

from __future__ import annotations

import gc
from datetime import datetime

from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.middleware import ConnexionMiddleware, MiddlewarePosition
from connexion.options import SwaggerUIOptions
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session
from starlette.exceptions import HTTPException

from adapters.france_travail.backends import build_gateway_backends
from adapters.france_travail.errors import GatewayRefused, UpstreamAnswer, UpstreamUnavailable
from adapters.outbound import events as connector_events
from adapters.reference_store import build_reference_backends
from api import connexion_once
from api.console.mount import ConsoleMount
from api.context import current_request
from api.errors import audit_failure_response, handle_problem, handle_unexpected
from api.jobs import CHECKPOINT_JOB, DETECTION_JOB
from api.periodic import BackgroundJobs
from api.pipeline import RequestPipeline
from api.refusals import handle_gateway_refused, handle_upstream_answer, handle_upstream_unavailable
from api.resolver import ContractResolver
from api.security import RateLimited, handle_overloaded, handle_rate_limited
from api.services import Services
from api.validation import InputGuard, validator_map
from parcours.orientation_rules import RuleTable, load_rules
from relais.core.auditing import AuditDraft
from relais.core.config import Settings, get_settings
from relais.core.db import Database
from relais.core.keys import load_or_create_keyset
from relais.core.observability import Metrics, configure_logging
from relais.core.ratelimit import Overloaded, build_rate_limiter
from specs import OPS_SPEC, SPECS_DIR, api_specs


def build_services(settings: Settings) -> Services:
    # A département's own orientation rule table is checked now, not on the first calcul.
    load_rules(settings.orientation_rules_file)
    keys = load_or_create_keyset(settings)
    # The domains' events reach the organisations' connectors, in the change's transaction.
    connector_events.install()

    # The backends are built once, but each call must read and write in its own unit of work
    # (its reads, writes and audit event commit or roll back together), at its own clock, and
    # record in its own audit draft: they take providers of these, answered here, in the web
    # shell, from the request being served. Outside a request they raise LookupError.
    def session() -> Session:
        return current_request().session()

    def clock() -> datetime:
        return current_request().services.clock()

    def audit() -> AuditDraft:
        return current_request().audit

    def rules() -> RuleTable:
        # The serving app's settings, read on each call (the table is cached per file version).
        return load_rules(current_request().services.settings.orientation_rules_file)

    if settings.backend == "france-travail":
        backends = build_gateway_backends(
            settings,
            session=session,
            keys=keys,
            clock=clock,
            jeton_ttl=lambda: current_request().services.jeton_ttl,
            audit=audit,
        )
    else:
        backends = build_reference_backends(session=session, keys=keys, clock=clock, rules=rules)
    return Services(
        settings=settings,
        database=Database(settings.resolved_database_url),
        keys=keys,
        backends=backends,
        metrics=(metrics := Metrics()),
        # In process memory, or in Redis when RELAIS_REDIS_URL is set (shared by every replica).
        rate_limiter=build_rate_limiter(settings.redis_url, metrics.registry),
    )


def create_served_app(settings: Settings | None = None) -> AsyncApp:
    """The app as ``relais serve`` runs it (one per worker process): ``create_app``, then the
    garbage collector told that what exists now lives for good (``gc.freeze``): the specs,
    validators, routes and modules, about a million objects that each full collection walked
    again, pausing every call in flight for ~40 ms a few times a second under load (search p99
    45 ms; 8.6 ms frozen, bench/run.py --wrk). Not in ``create_app``: the tests build many apps
    in one process, and a frozen app is never collected."""
    app = create_app(settings)
    gc.collect()
    gc.freeze()
    return app


def create_app(settings: Settings | None = None, services: Services | None = None) -> AsyncApp:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    connexion_once.install()
    services = services or build_services(settings)
    app = AsyncApp(
        __name__,
        specification_dir=SPECS_DIR,
        validator_map=validator_map(),
        swagger_ui_options=SwaggerUIOptions(swagger_ui=True),
        middlewares=[connexion_once.ours(middleware) for middleware in ConnexionMiddleware.default_middlewares],
    )
    # Added first on purpose: connexion's reordering of APIs by base path puts a root API
    # ahead of the APIs added before it, where its catch-all mount would answer 404 for
    # every other path. Added first, it ends up last.
    app.add_api(
        OPS_SPEC,
        resolver=ContractResolver(),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=False, serve_spec=False),
    )
    for spec in api_specs():
        app.add_api(
            spec,
            resolver=ContractResolver(),
            # RFC 6749 has token endpoints ignore unknown form parameters.
            strict_validation=spec != "auth.yaml",
            validate_responses=settings.validate_responses,
        )
    app.add_middleware(
        RequestPipeline,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        services=services,
        failure_response=audit_failure_response,
    )
    # Malformed input (duplicated headers, oversized or undecodable bodies) is refused after
    # routing (so the refusal is audited) and before the security check and the parsers.
    app.add_middleware(
        InputGuard,
        position=MiddlewarePosition.BEFORE_SECURITY,
        max_body_bytes=lambda: current_request().services.settings.max_body_bytes,
    )
    # Sequencing and signing the audit journal, and the detection rules, while the app is up.
    app.add_middleware(
        BackgroundJobs,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        services=services,
        jobs=[CHECKPOINT_JOB, DETECTION_JOB],
    )
    # The web console for people (/console/, and / leading to it), inside the pipeline.
    app.add_middleware(ConsoleMount, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_error_handler(RateLimited, handle_rate_limited)
    app.add_error_handler(Overloaded, handle_overloaded)
    app.add_error_handler(PoolTimeout, handle_overloaded)
    # The France Travail gateway's answers (passed on as France Travail sent them) and refusals.
    app.add_error_handler(UpstreamAnswer, handle_upstream_answer)
    app.add_error_handler(UpstreamUnavailable, handle_upstream_unavailable)
    app.add_error_handler(GatewayRefused, handle_gateway_refused)
    app.add_error_handler(ProblemException, handle_problem)
    app.add_error_handler(HTTPException, handle_problem)
    app.add_error_handler(Exception, handle_unexpected)
    return app
