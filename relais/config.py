"""Runtime configuration, read once from ``RELAIS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAIS_", extra="ignore")

    # Where the embedded default keeps its SQLite file and generated development keys.
    data_dir: Path = Path(".relais")
    # Empty means the embedded default: a SQLite file in ``data_dir``.
    database_url: str = ""
    # JSON key set (see relais/keys.py). Empty means ``data_dir/keys.json``.
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

    # A département's own orientation rule table for calculOrientation (format: see
    # adapters/reference_store/orientation_rules.json); empty means the shipped default.
    orientation_rules_file: Path | None = None

    # Check responses against the specs (costly; on in tests).
    validate_responses: bool = False
    log_level: str = "INFO"

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
