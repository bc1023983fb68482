"""Runtime configuration, read once from ``RELAIS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAIS_", extra="ignore")

    # Where the embedded default keeps its SQLite file and generated development keys.
    data_dir: Path = Path(".relais")
    # Empty means the embedded default: a SQLite file in ``data_dir``.
    database_url: str = ""
    # JSON key set (see relais/core/keys.py). Empty means ``data_dir/keys.json``.
    keys_file: Path | None = None
    # Generate a development key set when none exists. Allowed by default only for the
    # embedded SQLite default; a PostgreSQL deployment must be given its keys.
    generate_dev_keys: bool | None = None

    # Public base URL, used as token issuer and in printed walk-throughs.
    public_url: str = "http://127.0.0.1:8000"
    token_audience: str = "relais-partenaire"  # noqa: S105  (an audience, not a secret)
    # France Travail answers expires_in 1499 (about 25 minutes).
    token_ttl_seconds: int = 1499
    # France Travail's jeton usager lives 24 hours.
    jeton_ttl_seconds: int = 86400
    # The admin APIs (habilitations, audit, connectors) take tokens of their own audience,
    # issued to an agent after a ProConnect login.
    admin_audience: str = "relais-admin"
    admin_token_ttl_seconds: int = Field(default=3600, ge=60)
    # Sensitive RGC actions (closing a review campaign...) need a login this recent.
    fresh_auth_seconds: int = Field(default=600, ge=60)
    # Allowed clock skew when checking access tokens.
    token_leeway_seconds: int = 30

    # Default rate limit per client and per API, in calls per second (burst capacity).
    rate_limit_per_second: int = Field(default=20, ge=1)
    # Redis counting the rate limits for every worker and replica (redis://[:password@]host:port/db).
    # Empty: each process counts its own, so N processes let a client make N times its limit.
    redis_url: str = ""

    # Server processes ``relais serve`` starts (``--workers`` overrides it). More than one needs
    # PostgreSQL: SQLite takes one writer at a time, and every call writes its audit event.
    workers: int = Field(default=1, ge=1, le=64)
    # A token signed by a key this process does not know (rotated by another replica) makes it
    # re-read the key file, at most once per this many seconds.
    keys_reload_min_seconds: float = Field(default=2.0, ge=0)

    # A département's own orientation rule table for calculOrientation (format: see
    # parcours/orientation_rules.json); empty means the shipped default.
    orientation_rules_file: Path | None = None

    # Check responses against the specs (costly; on in tests).
    validate_responses: bool = False
    log_level: str = "INFO"
    # Largest request body accepted, in bytes: a larger one is refused with 413 before any
    # parser runs (no contract's body comes near it).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Bearer token that ``GET /metrics`` requires (``Authorization: Bearer <token>``); empty
    # means the endpoint answers 404, so nothing about the traffic is exposed by default.
    metrics_token: str = ""

    # Agent login through ProConnect (relais/connexion/v1, habilitations/login.py). Disabled
    # (404 with a message) until the issuer, client id, client secret and redirect URI are set.
    # Issuer, e.g. https://auth.agentconnect.gouv.fr/api/v2; discovery is read from
    # ``<issuer>/.well-known/openid-configuration``.
    proconnect_issuer: str = ""
    proconnect_client_id: str = ""
    proconnect_client_secret: str = ""
    # Exactly as registered with ProConnect (the trailing slash matters).
    proconnect_redirect_uri: str = ""
    # Where ProConnect sends the browser back after logout; empty: ProConnect's own page.
    proconnect_post_logout_redirect_uri: str = ""
    proconnect_scopes: str = "openid email given_name usual_name siret uid"
    # Multi-factor levels only (convention, Annexe 1: "authentification multi facteurs"):
    # anything else is refused with a 403. eidas1-mfa is ProConnect's e-mail OTP fallback for
    # identity providers without 2FA. A JSON list in the environment.
    proconnect_accepted_acr: list[str] = Field(default_factory=lambda: ["eidas1-mfa", "eidas2", "eidas3"], min_length=1)
    # Signature algorithms accepted for the ID token and the userinfo JWT (keys from the JWKS).
    proconnect_signing_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    proconnect_timeout_seconds: float = Field(default=10.0, gt=0)
    # A login started and not finished within this delay must start again.
    proconnect_login_ttl_seconds: int = Field(default=600, ge=60)

    # France Travail gateway (adapters/france_travail, issue #6): with backend "france-travail"
    # the partner APIs are forwarded to the real platform instead of the reference store.
    backend: Literal["reference", "france-travail"] = "reference"
    # Recette: https://api-r.ft-qvr.io and https://proxyproconnect-r.ft-qvr.net/connexion/oauth2/access_token
    ft_api_url: str = "https://api.francetravail.io"
    ft_token_url: str = "https://proxyproconnect.francetravail.net/connexion/oauth2/access_token"  # noqa: S105 (a URL)
    ft_realm: str = "/agent"
    # One France Travail application for every organisation (a single-département deployment)...
    ft_client_id: str = ""
    ft_client_secret: str = ""
    # ...or each organisation its own (JSON, see adapters/france_travail/credentials.py).
    ft_credentials_file: Path | None = None
    # France Travail's APIs are slow (callers use 30 to 180 s).
    ft_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    ft_timeout_seconds: float = Field(default=60.0, gt=0)
    # 429: retried this many times, honouring Retry-After up to the wait below, then passed on.
    ft_max_retries: int = Field(default=3, ge=0, le=10)
    ft_max_retry_wait_seconds: float = Field(default=10.0, ge=0)
    # A cached upstream access token is renewed this long before it expires.
    ft_token_margin_seconds: int = Field(default=60, ge=0)
    # Inbound feeds (adapters/inbound): a département's own CSV formats, next to the shipped
    # ones, and the pull connectors reading editors' REST APIs (JSON, see the README).
    inbound_formats_dir: Path | None = None
    pull_connectors_file: Path | None = None

    # Outbound connectors (adapters/outbound, issue #6): the delivery worker's defaults; a
    # connector may override the attempts and the timeout.
    connector_timeout_seconds: float = Field(default=10.0, gt=0)
    # After this many failed attempts a message is dead: visible and replayable, no longer retried.
    connector_max_attempts: int = Field(default=10, ge=1)
    # Exponential backoff with jitter: base * 2^(attempt - 1), capped; Retry-After is honoured
    # up to its own cap.
    connector_backoff_base_seconds: float = Field(default=30.0, ge=0)
    connector_backoff_max_seconds: float = Field(default=6 * 3600.0, ge=0)
    connector_retry_after_max_seconds: float = Field(default=3600.0, ge=0)
    # This many consecutive failures pause a connector (its RGC is notified).
    connector_pause_after_failures: int = Field(default=20, ge=1)
    # A claimed message is left to its worker this long; a worker that died loses it after that.
    connector_lease_seconds: float = Field(default=300.0, gt=0)
    connector_batch_size: int = Field(default=20, ge=1)
    connector_poll_seconds: float = Field(default=2.0, gt=0)
    # People's notifications by e-mail (connectors with an smtp:// or smtps:// url).
    notification_from: str = "relais@localhost"
    smtp_username: str = ""
    smtp_password: str = ""

    # Audit search, detection rules and incidents (audit/search.py, audit/detection.py, issue #5).
    # Largest page of an audit search.
    audit_search_max_page: int = Field(default=500, ge=1)
    # The detector evaluates new journal events every this many seconds inside the app
    # (0: only through ``relais audit detect``), at most ``audit_detection_batch`` at a time,
    # leaving the most recent ``audit_detection_lag_seconds`` for the next run so that no
    # transaction still committing is skipped.
    audit_detection_interval_seconds: int = Field(default=30, ge=0)
    audit_detection_batch: int = Field(default=5000, ge=1)
    audit_detection_lag_seconds: int = Field(default=5, ge=0)
    # One agent reading many distinct usagers in a short window.
    audit_bulk_read_window_seconds: int = Field(default=600, ge=1)
    audit_bulk_read_usagers: int = Field(default=50, ge=1)
    # Repeated denials for one caller.
    audit_denials_window_seconds: int = Field(default=600, ge=1)
    audit_denials_threshold: int = Field(default=20, ge=1)
    # Attempts outside the organisation's perimeter (audit reasons below).
    audit_perimeter_window_seconds: int = Field(default=3600, ge=1)
    audit_perimeter_threshold: int = Field(default=3, ge=1)
    audit_perimeter_reasons: list[str] = Field(default_factory=lambda: ["usager_non_rattache"])
    # Off-hours bulk reads: distinct usagers read outside office hours (local time, weekends off).
    audit_office_hours_timezone: str = "Europe/Paris"
    audit_office_hours_start: int = Field(default=7, ge=0, le=23)
    audit_office_hours_end: int = Field(default=20, ge=1, le=24)
    audit_off_hours_window_seconds: int = Field(default=3600, ge=1)
    audit_off_hours_usagers: int = Field(default=10, ge=1)
    # Self-grant attempts: the audit reasons of an RGC's refused grant to themselves.
    # (habilitations.checks refuses them with ``separation_des_roles``; a reason matches
    # when equal, or when it ends with ``:<code>``).
    audit_self_grant_reasons: list[str] = Field(default_factory=lambda: ["separation_des_roles"])
    # Break-glass and override actions: every use opens an incident (so does any event whose
    # details say ``"override": true``).
    audit_break_glass_operations: list[str] = Field(
        default_factory=lambda: ["habilitations.agent.bloquer", "habilitations.habilitation.bloquer"]
    )
    # A client using a scope (or, when the event has none, an operation) it rarely uses: under
    # ``audit_rare_scope_ratio`` of its calls over the baseline, once it has made
    # ``audit_rare_scope_min_calls`` calls in that baseline.
    audit_rare_scope_baseline_days: int = Field(default=30, ge=1)
    audit_rare_scope_min_calls: int = Field(default=200, ge=1)
    audit_rare_scope_ratio: float = Field(default=0.01, ge=0, le=1)
    # Convention art. 5: notify the other party's DPO at the latest 48 hours after discovery.
    audit_incident_notification_hours: int = Field(default=48, ge=1)

    # Verifiable audit journal (audit/journal.py, audit/checkpoints.py, audit/retention.py, issue #5).
    # Ed25519 key signing the journal's checkpoints: a PEM file of its own (never in the
    # database), created on first use; empty means ``data_dir/audit-signing-key.pem``.
    audit_signing_key_file: Path | None = None
    # A signed checkpoint is made this often by ``relais audit checkpoint --every`` and by the
    # app's background task (0: only on demand).
    audit_checkpoint_interval_seconds: int = Field(default=300, ge=0)
    # Event payloads older than this are purged by ``relais audit purge`` (leaf hashes and
    # checkpoints stay): 1 year by default, 3 years at most (CNIL).
    audit_retention_days: int = Field(default=365, ge=180, le=1095)
    # PostgreSQL role the application connects as; when set, the migration leaves it SELECT and
    # INSERT only on the journal tables (migrations and purges then run as the owner).
    audit_app_role: str = ""

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'relais.db').as_posix()}"

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def may_generate_dev_keys(self) -> bool:
        if self.generate_dev_keys is not None:
            return self.generate_dev_keys
        return self.is_embedded

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def resolved_audit_signing_key_file(self) -> Path:
        return self.audit_signing_key_file or self.data_dir / "audit-signing-key.pem"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
