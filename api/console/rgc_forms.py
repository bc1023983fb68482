"""What the RGC's pages share beyond words: the organisation a page is about, a date read from a
form, the agent page an action leads back to, and who is shown the manager's buttons.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from api.admin.habilitations_common import organisation_for
from api.console.web import ConsoleRefused
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation


def named_organisation(session: Session, principal: Principal, code: Any, level: str) -> Organisation:
    """The organisation the page or form names (``organisation``), else the principal's own,
    once the principal is checked for ``level`` on it (``habilitations_common.organisation_for``)."""
    return organisation_for(session, principal, str(code or principal.organisation or ""), level)


def manages(principal: Principal, organisation_id: int) -> bool:
    """Who the domain lets create agents, grant and extend (``checks.require_manager``): the
    organisation's RGC or the operator, not the CSSI (who may still revoke). A display aid."""
    return principal.is_operator or principal.is_rgc_of(organisation_id)


def form_date(value: Any, *, required: bool) -> date | None:
    """A date from a form: the ISO value of a date picker, or JJ/MM/AAAA typed by hand."""
    text = str(value or "").strip()
    if not text:
        if required:
            raise ConsoleRefused(RefusalKind.INVALID, "DATE_REQUISE", "Indiquez une date (JJ/MM/AAAA)")
        return None
    for parse in (date.fromisoformat, lambda raw: datetime.strptime(raw, "%d/%m/%Y").date()):
        try:
            return parse(text)
        except ValueError:
            continue
    raise ConsoleRefused(RefusalKind.INVALID, "DATE_INVALIDE", "Date invalide : JJ/MM/AAAA attendu")


def agent_url(agent_id: int, done: str, habilitation_id: str | None = None) -> str:
    # Ids and a status word only: no name or other personal data in the address.
    about = f"&habilitation={habilitation_id}" if habilitation_id else ""
    return f"/console/habilitations/agents/{agent_id}?fait={done}{about}"
