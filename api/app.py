"""The app factory: one connexion AsyncApp serving every spec in ``specs/``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from sqlmodel import Session
from starlette.exceptions import HTTPException

from adapters.france_travail.answers import GatewayRefusal, UpstreamAnswer, UpstreamUnavailable, handle_upstream_answer
from adapters.france_travail.backends import build_gateway_backends
from adapters.reference_store import ReferenceStore
from adapters.reference_store.activites import ActivitesStore
from adapters.reference_store.contrat_engagement import ContratEngagementStore
from adapters.reference_store.orientation import OrientationStore
from adapters.reference_store.rendez_vous import RendezVousStore
from adapters.reference_store.sanctions import SanctionsStore
from api.context import current_request
from api.errors import audit_failure_response, handle_problem, handle_unexpected
from api.jobs import CHECKPOINT_JOB, DETECTION_JOB
from api.periodic import BackgroundJobs
from api.pipeline import RequestPipeline
from api.resolver import ContractResolver
from api.security import RateLimited, handle_rate_limited
from api.services import Services
from api.validation import validator_map
from parcours.orientation_rules import load_rules
from parcours.ports import Backends
from relais.core.config import Settings, get_settings
from relais.core.db import Database
from relais.core.keys import KeySet, load_or_create_keyset
from relais.core.observability import Metrics, configure_logging
from relais.core.ratelimit import RateLimiter
from specs import OPS_SPEC, SPECS_DIR, api_specs


def build_services(settings: Settings) -> Services:
    # A département's own orientation rule table is checked now, not on the first calcul.
    load_rules(settings.orientation_rules_file)
    keys = load_or_create_keyset(settings)

    # Backends read through the request's own session, so reads, writes and the audit
    # event of one call share one transaction.
    def session() -> Session:
        return current_request().session()

    def clock() -> datetime:
        return current_request().services.clock()

    if settings.backend == "france-travail":
        backends = build_gateway_backends(
            settings, session=session, keys=keys, clock=clock, jeton_ttl=lambda: current_request().services.jeton_ttl
        )
    else:
        backends = _reference_backends(session, keys, clock)
    return Services(
        settings=settings,
        database=Database(settings.resolved_database_url),
        keys=keys,
        backends=backends,
        metrics=Metrics(),
        rate_limiter=RateLimiter(),
    )


def _reference_backends(session: Callable[[], Session], keys: KeySet, clock: Callable[[], datetime]) -> Backends:
    store = ReferenceStore(session, keys)
    return Backends(
        rechercher_usager=store,
        informations_administratives=store,
        statut_usager=store,
        activites=ActivitesStore(session, keys, clock),
        orientation=OrientationStore(session, keys, clock),
        rendez_vous=RendezVousStore(session, keys, clock),
        contrat_engagement=ContratEngagementStore(session, keys, clock),
        sanctions=SanctionsStore(session, keys, clock),
    )


def create_app(settings: Settings | None = None, services: Services | None = None) -> AsyncApp:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    services = services or build_services(settings)
    app = AsyncApp(
        __name__,
        specification_dir=SPECS_DIR,
        validator_map=validator_map(),
        swagger_ui_options=SwaggerUIOptions(swagger_ui=True),
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
    # Sequencing and signing the audit journal, and the detection rules, while the app is up.
    app.add_middleware(
        BackgroundJobs,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        services=services,
        jobs=[CHECKPOINT_JOB, DETECTION_JOB],
    )
    app.add_error_handler(RateLimited, handle_rate_limited)
    # The France Travail gateway's answers, passed on as France Travail sent them.
    app.add_error_handler(UpstreamAnswer, handle_upstream_answer)
    app.add_error_handler(UpstreamUnavailable, handle_upstream_answer)
    app.add_error_handler(GatewayRefusal, handle_upstream_answer)
    app.add_error_handler(ProblemException, handle_problem)
    app.add_error_handler(HTTPException, handle_problem)
    app.add_error_handler(Exception, handle_unexpected)
    return app
