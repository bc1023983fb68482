"""What the ``relais habilitations`` admin commands share: the operator, the audited run.

The command line acts as the hub operator (``Principal.command_line()``). Each command runs in
one transaction with one audit event on the ``cli`` channel (ids and codes only); a refusal is
audited alone and printed in French.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import click
from sqlmodel import Session, select

from audit.journal import JournalRecorder
from audit.lookup import JournalLookup
from habilitations.refusals import HabilitationRefused
from habilitations.roles import Principal
from relais.cli.support import fail, migrated_database
from relais.core.auditing import AuditDraft
from relais.core.config import get_settings
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

OPERATOR = Principal.command_line()
# The audit domain, as the habilitations domain is handed it.
RECORDER = JournalRecorder()
LOOKUP = JournalLookup()

Action = Callable[[Session, datetime, str], dict[str, Any] | None]


def echo(document: Any) -> None:
    click.echo(json.dumps(document, ensure_ascii=False, sort_keys=True))


def now() -> datetime:
    return datetime.now(UTC)


def _audit(
    session: Session, operation: str, target: str | None, details: dict[str, Any], status: int, request_id: str
) -> None:
    draft = AuditDraft(
        channel="cli",
        operation=f"relais.cli.habilitations.{operation}",
        target=target,
        details={key: value for key, value in details.items() if value is not None} or None,
        reason=details.get("refus") if status >= 400 else None,
    )
    RECORDER.record(session, draft, request_id=request_id, http_status=status, occurred_at=now())


def run_audited(operation: str, target: str | None, action: Action) -> None:
    """Run ``action`` in one transaction with its audit event; a refusal is audited alone.

    ``action`` gets the session, the time and the command's request id (its transitions'
    events and the command's own share it); it returns the value-free details of the
    command's event (or None).
    """
    request_id = f"cli-{uuid.uuid4().hex}"
    with migrated_database(get_settings()) as database:
        try:
            with database.transaction() as session:
                details = action(session, now(), request_id) or {}
                _audit(session, operation, details.pop("cible", target), details, 200, request_id)
        except HabilitationRefused as refused:
            code = refused.code.lower()
            with database.transaction() as session:
                _audit(session, operation, target, {"refus": f"{operation}:{code}"}, 403, request_id)
            fail(refused.message)


def organisation_by_code(session: Session, code: str) -> Organisation:
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if organisation is None or organisation.id is None:
        raise HabilitationRefused(RefusalKind.UNKNOWN, "organisation_inconnue", f"Organisation inconnue : {code}")
    return organisation


def parse_date(value: str | None, name: str) -> date | None:
    if value is None or value == "aucune":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("date AAAA-MM-JJ attendue", param_hint=name) from None
