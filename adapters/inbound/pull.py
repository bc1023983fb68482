"""The generic pull connector: read an editor's REST API and record what it returns.

Connectors are configuration (``RELAIS_PULL_CONNECTORS_FILE``), never code::

    {"connecteurs": [{
      "nom": "solis-cd33-rdv", "organisation": "CD33", "url": "https://solis.example/api/rendez-vous",
      "format": "resultats-rdv",          # the field mapping (adapters/inbound/formats)
      "parametre_depuis": "since",        # query parameter carrying the cursor
      "champ_curseur": "updatedAt",       # item field whose greatest value is the next cursor
      "champ_elements": "items",          # where the items are (absent: the body is the list)
      "champ_suivant": "next",            # URL of the next page, on the same host (optional)
      "variable_jeton": "SOLIS_CD33_TOKEN", "entete_jeton": "Authorization", "prefixe_jeton": "Bearer ",
      "delai_secondes": 30, "pages_max": 50}]}

Items are flattened (``{"usager": {"nir": ...}}`` gives the column ``usager.nir``) and go
through the same validation, matching and domain rules as a CSV line. A run is one
transaction: all pages are applied with the cursor's advance, or nothing is (the cursor
stays, so the next scheduled run reads the same items again; re-reading is harmless since
each record is keyed). Schedule ``relais fichiers pull NAME`` with cron or a systemd timer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from adapters.inbound.feed import FeedRejected, FeedReport, apply_rows, audit_rejection
from adapters.inbound.mapping import FeedFormat
from adapters.inbound.models import PullCursor
from adapters.inbound.ports import SourceRow
from relais.core.auditing import AuditRecorder
from relais.core.db import Database
from relais.core.keys import KeySet

MAX_ITEMS = 100_000


class PullError(Exception):
    """The editor's API could not be read, or the configuration is wrong (French message)."""


@dataclass(frozen=True)
class PullConfig:
    nom: str
    # The organisation whose editor this is: only its usagers may be changed.
    organisation: str
    url: str
    format: str
    parametre_depuis: str = "since"
    champ_curseur: str | None = None
    champ_elements: str | None = None
    champ_suivant: str | None = None
    variable_jeton: str | None = None
    entete_jeton: str = "Authorization"
    prefixe_jeton: str = "Bearer "
    delai_secondes: float = 30.0
    pages_max: int = 50


def load_connectors(path: Path | None) -> dict[str, PullConfig]:
    if path is None:
        raise PullError("aucun connecteur configuré : définissez RELAIS_PULL_CONNECTORS_FILE")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        connectors = {str(item["nom"]): PullConfig(**item) for item in raw["connecteurs"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PullError(f"configuration des connecteurs illisible ({type(exc).__name__})") from None
    for config in connectors.values():
        if not config.url.startswith(("https://", "http://")):
            raise PullError(f"connecteur {config.nom} : url http(s) attendue")
    return connectors


@dataclass(frozen=True)
class PullRun:
    report: FeedReport
    cursor_before: str | None
    cursor_after: str | None
    pages: int


class ApiSource:
    """The items of one run, fetched page by page; ``next_cursor`` is known once all are read."""

    def __init__(self, config: PullConfig, http: httpx.Client, cursor: str | None) -> None:
        self.origin = f"pull:{config.nom}"
        self._config = config
        self._http = http
        self._cursor = cursor
        self.next_cursor = cursor
        self.pages = 0

    def rows(self) -> Iterator[SourceRow]:
        config = self._config
        url: str | None = config.url
        params = {config.parametre_depuis: self._cursor} if self._cursor else {}
        position = 0
        while url is not None:
            if self.pages >= config.pages_max:
                raise PullError(f"plus de {config.pages_max} pages : augmentez pages_max ou lancez plus souvent")
            body = self._get(url, params)
            self.pages += 1
            items, url = self._page(body)
            params = {}
            for item in items:
                position += 1
                if position > MAX_ITEMS:
                    raise PullError(f"plus de {MAX_ITEMS} éléments en une exécution")
                if not isinstance(item, dict):
                    raise PullError(f"élément {position} : objet JSON attendu")
                self._advance(item)
                yield SourceRow(position, flatten(item))

    def _get(self, url: str, params: Mapping[str, str]) -> Any:
        headers = {"Accept": "application/json"}
        if self._config.variable_jeton:
            secret = os.environ.get(self._config.variable_jeton)
            if not secret:
                raise PullError(f"variable d'environnement {self._config.variable_jeton} absente")
            headers[self._config.entete_jeton] = f"{self._config.prefixe_jeton}{secret}"
        try:
            # No params at all on a next-page URL: httpx would replace the query it carries.
            response = self._http.get(
                url, params=dict(params) or None, headers=headers, timeout=self._config.delai_secondes
            )
        except httpx.TimeoutException:
            raise PullError("l'API de l'éditeur n'a pas répondu à temps") from None
        except httpx.HTTPError:
            raise PullError("API de l'éditeur injoignable") from None
        if response.status_code != 200:
            raise PullError(f"l'API de l'éditeur a répondu {response.status_code}")
        try:
            return json.loads(response.content.decode("utf-8-sig"))
        except ValueError:
            raise PullError("réponse de l'éditeur illisible (JSON UTF-8 attendu)") from None

    def _page(self, body: Any) -> tuple[list[Any], str | None]:
        config = self._config
        if isinstance(body, list):
            return body, None
        if not isinstance(body, dict):
            raise PullError("réponse de l'éditeur : liste ou objet JSON attendu")
        items = body.get(config.champ_elements) if config.champ_elements else None
        if not isinstance(items, list):
            raise PullError(f"réponse de l'éditeur : liste attendue dans « {config.champ_elements} »")
        following = body.get(config.champ_suivant) if config.champ_suivant else None
        if following is None:
            return items, None
        if not isinstance(following, str) or httpx.URL(following).host != httpx.URL(config.url).host:
            # Never follow a link elsewhere with the editor's credentials.
            raise PullError("page suivante sur un autre hôte que l'API configurée")
        return items, following

    def _advance(self, item: Mapping[str, Any]) -> None:
        field = self._config.champ_curseur
        value = flatten(item).get(field) if field else None
        if value is not None and (self.next_cursor is None or str(value) > self.next_cursor):
            self.next_cursor = str(value)


def flatten(item: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in item.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def pull(
    database: Database,
    keys: KeySet,
    config: PullConfig,
    feed_format: FeedFormat,
    *,
    audit: AuditRecorder,
    http: httpx.Client | None = None,
    now: datetime | None = None,
) -> PullRun:
    """One run of the connector; raises PullError or FeedRejected (nothing applied, cursor kept)."""
    now = now or datetime.now(UTC)
    operation = f"fichiers.pull.{config.nom}"
    owned = http is None
    client = http or httpx.Client()
    try:
        with database.session() as session:
            state = session.get(PullCursor, config.nom) or PullCursor(name=config.nom)
            before = state.cursor
            source = ApiSource(config, client, before)
            try:
                report = apply_rows(
                    session,
                    keys,
                    feed_format,
                    source.rows(),
                    origin=source.origin,
                    operation=operation,
                    organisation=config.organisation,
                    audit=audit,
                    now=now,
                )
            except (PullError, FeedRejected) as exc:
                session.rollback()
                _failed(session, config.nom, now, exc)
                if isinstance(exc, FeedRejected):
                    audit_rejection(
                        session,
                        audit,
                        origin=source.origin,
                        operation=operation,
                        organisation=config.organisation,
                        errors=len(exc.errors),
                        now=now,
                    )
                session.commit()
                raise
            state.cursor = source.next_cursor
            state.last_run_at = now
            state.last_status = "ok"
            state.last_error = None
            state.updated_at = now
            session.add(state)
            session.commit()
            return PullRun(report, before, source.next_cursor, source.pages)
    finally:
        if owned:
            client.close()


def _failed(session: Session, name: str, now: datetime, exc: Exception) -> None:
    state = session.get(PullCursor, name) or PullCursor(name=name)
    state.last_run_at = now
    state.last_status = "rejete" if isinstance(exc, FeedRejected) else "echec"
    state.last_error = (str(exc) if isinstance(exc, PullError) else "; ".join(map(str, exc.errors)))[:1000]  # type: ignore[attr-defined]
    state.updated_at = now
    session.add(state)
