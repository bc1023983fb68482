"""Subscriptions: what an organisation's access form (Annexe 4) requested, per API.

A subscription bounds every grant of the organisation's agents for that API. Narrowing it
does not rewrite the grants: the request-time policy checks both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlmodel import Session, select

from habilitations import lookups
from habilitations.checks import check_text, clean_scopes, require_security
from habilitations.models import Souscription
from habilitations.roles import Principal
from habilitations.transitions import record
from relais.core.auditing import AuditRecorder


def set_subscription(
    session: Session,
    actor: Principal,
    *,
    organisation_id: int,
    api: str,
    scopes: Iterable[str],
    reference: str | None = None,
    demandee_le: date | None = None,
    now: datetime,
    recorder: AuditRecorder,
    request_id: str,
) -> Souscription:
    """Create or replace the organisation's subscription to ``api`` (operator or CSSI).

    Audited only when something changes: setting it again as it is writes nothing.
    """
    require_security(actor)
    organisation = lookups.organisation(session, organisation_id)
    check_text("api", api, 64, required=True)
    wanted = clean_scopes(scopes)
    existing = session.exec(
        select(Souscription)
        .where(Souscription.organisation_id == organisation_id, Souscription.api == api)
        .with_for_update()
    ).first()
    before = list(existing.scopes) if existing is not None else None
    if existing is None:
        existing = Souscription(
            organisation_id=organisation_id,
            api=api,
            scopes=wanted,
            reference=reference,
            demandee_le=demandee_le,
            created_at=now,
        )
    elif before == wanted and existing.reference == reference and existing.demandee_le == demandee_le:
        return existing
    existing.scopes = wanted
    existing.reference = reference
    existing.demandee_le = demandee_le
    session.add(existing)
    session.flush()
    record(
        session,
        actor,
        "habilitations.souscription.definir",
        agent=None,
        organisation=organisation,
        now=now,
        target=f"souscription:{existing.id}",
        details={"api": api, "scopes_avant": before, "scopes_apres": wanted},
        recorder=recorder,
        request_id=request_id,
    )
    return existing
