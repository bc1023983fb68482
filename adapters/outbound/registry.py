"""Connector configuration: create, find, rotate keys, pause and resume.

Secrets are generated here (never chosen by hand), shown once to whoever configures the
editor, and stored sealed with the field key. A rotation adds a key and retires the older ones
after an overlap, during which every delivery carries both signatures.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from adapters.outbound.models import ACTIVE, EMAIL, PAUSED, WEBHOOK, Connector, ConnectorKey
from parcours.events import EVENT_TYPES
from relais.core.keys import KeySet, new_kid
from relais.core.outbox import FAILED, PENDING, OutboxMessage
from relais.core.personal_data import decrypt_field, encrypt_field
from relais.core.tables import Organisation

_SECRET_CONTEXT = "connector_key.secret"  # noqa: S105  (an encryption context, not a secret)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
DEFAULT_OVERLAP = timedelta(days=7)


class ConnectorError(Exception):
    """A configuration refused; the message is for the operator, in French."""


def create_connector(
    session: Session,
    keys: KeySet,
    *,
    name: str,
    organisation: str | None,
    url: str,
    events: Iterable[str],
    notifications: bool,
    now: datetime,
    allow_http: bool = False,
) -> tuple[Connector, str, str]:
    """A new connector and its first key: (connector, kid, secret). The secret is shown once."""
    if not _NAME.match(name):
        raise ConnectorError("nom invalide : 2 à 64 caractères parmi a-z, 0-9 et -")
    if session.exec(select(Connector).where(Connector.name == name)).first() is not None:
        raise ConnectorError(f"le connecteur {name} existe déjà")
    kind = check_url(url, allow_http=allow_http)
    wanted = _events(events)
    if kind == EMAIL and (wanted or not notifications):
        raise ConnectorError("un connecteur smtp:// porte les notifications (--notifications), pas d'événements")
    organisation_id = None
    if organisation is not None:
        found = session.exec(select(Organisation).where(Organisation.code == organisation)).first()
        if found is None:
            raise ConnectorError(f"organisation inconnue : {organisation}")
        organisation_id = found.id
    connector = Connector(
        name=name,
        organisation_id=organisation_id,
        kind=kind,
        url=url,
        events=wanted,
        notifications=notifications,
        created_at=now,
        updated_at=now,
    )
    session.add(connector)
    session.flush()
    kid, secret = _add_key(session, keys, connector, now)
    return connector, kid, secret


def update_connector(
    connector: Connector,
    *,
    now: datetime,
    url: str | None = None,
    events: Iterable[str] | None = None,
    notifications: bool | None = None,
    allow_http: bool = False,
) -> list[str]:
    """Change what is given; the names of the fields changed (for the audit trail)."""
    changed = []
    if url is not None and url != connector.url:
        if check_url(url, allow_http=allow_http) != connector.kind:
            raise ConnectorError("url invalide : un connecteur garde son type (webhook ou courriel)")
        connector.url = url
        changed.append("url")
    if events is not None:
        wanted = _events(events)
        if wanted != connector.events:
            connector.events = wanted
            changed.append("evenements")
    if notifications is not None and notifications != connector.notifications:
        connector.notifications = notifications
        changed.append("notifications")
    if changed:
        connector.updated_at = now
    return changed


def _events(events: Iterable[str]) -> list[str]:
    wanted = sorted(set(events))
    unknown = [e for e in wanted if e != "*" and e not in EVENT_TYPES]
    if unknown:
        raise ConnectorError(f"type d'événement inconnu : {', '.join(unknown)}")
    return wanted


def check_url(url: str, *, allow_http: bool = False) -> str:
    """The connector kind the URL names: ``webhook`` (https) or ``email`` (smtp, smtps)."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.username or parts.password:
        raise ConnectorError("url invalide : pas d'identifiants dans l'URL (RELAIS_SMTP_USERNAME pour SMTP)")
    if parts.scheme in ("smtp", "smtps") and parts.hostname:
        return EMAIL
    if parts.scheme not in schemes or not parts.hostname:
        raise ConnectorError(
            "url invalide : https://… (ou smtp://, smtps:// pour les notifications par courriel) attendu ;"
            " http seulement avec --allow-http, pour un essai local"
        )
    return WEBHOOK


def rotate_key(
    session: Session, keys: KeySet, connector: Connector, now: datetime, *, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[str, str]:
    """A new key; the current ones keep signing for ``overlap``, then stop. (kid, secret)."""
    for key in valid_keys(session, connector, now):
        if key.retired_at is None or key.retired_at > now + overlap:
            key.retired_at = now + overlap
            session.add(key)
    return _add_key(session, keys, connector, now)


def _add_key(session: Session, keys: KeySet, connector: Connector, now: datetime) -> tuple[str, str]:
    assert connector.id is not None
    kid = new_kid()
    secret = secrets.token_urlsafe(32)
    session.add(
        ConnectorKey(
            connector_id=connector.id,
            kid=kid,
            secret_sealed=encrypt_field(keys, secret, context=_SECRET_CONTEXT),
            created_at=now,
        )
    )
    session.flush()
    return kid, secret


def valid_keys(session: Session, connector: Connector, now: datetime) -> list[ConnectorKey]:
    """The keys that sign deliveries at ``now``, newest first."""
    return [
        key
        for key in session.exec(
            select(ConnectorKey)
            .where(ConnectorKey.connector_id == connector.id)
            .order_by(col(ConnectorKey.created_at).desc(), col(ConnectorKey.id).desc())
        )
        if key.retired_at is None or key.retired_at > now
    ]


def signing_secrets(session: Session, keys: KeySet, connector: Connector, now: datetime) -> dict[str, bytes]:
    return {
        key.kid: decrypt_field(keys, key.secret_sealed, context=_SECRET_CONTEXT).encode("utf-8")
        for key in valid_keys(session, connector, now)
    }


def by_name(session: Session, name: str, *, lock: bool = False) -> Connector | None:
    query = select(Connector).where(Connector.name == name).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def organisation_code(session: Session, connector: Connector) -> str | None:
    if connector.organisation_id is None:
        return None
    organisation = session.get(Organisation, connector.organisation_id)
    return organisation.code if organisation is not None else None


def pause(session: Session, connector: Connector, reason: str, now: datetime) -> bool:
    """Pause deliveries (its messages wait, none is lost). False if it already was."""
    if connector.state == PAUSED:
        return False
    connector.state = PAUSED
    connector.pause_reason = reason[:255]
    connector.paused_at = now
    connector.updated_at = now
    session.add(connector)
    return True


def resume(session: Session, connector: Connector, now: datetime) -> int:
    """Deliver again, at once: its waiting messages are due now. Returns how many wait."""
    connector.state = ACTIVE
    connector.pause_reason = None
    connector.paused_at = None
    connector.consecutive_failures = 0
    connector.updated_at = now
    session.add(connector)
    waiting = list(
        session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.recipient == connector.recipient,
                col(OutboxMessage.status).in_((PENDING, FAILED)),
            )
            .with_for_update()
        )
    )
    for message in waiting:
        message.next_attempt_at = now
        session.add(message)
    return len(waiting)
