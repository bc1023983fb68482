"""What every console page shares: templates, security headers, the audit event, refusals.

A page's work runs in the thread pool with the request's unit of work; its audit event is
written and committed with that work before the page is rendered and sent, exactly as the
request pipeline does for the admin APIs (which it cannot do here: the console is not an
OpenAPI operation). A refusal, the admin handlers' own (same checks, same codes), rolls the
work back and is audited with its reason; the page then says why in French.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from adapters.outbound import notices
from api.admin.admin_security import principal_of
from api.admin.habilitations_common import LIRE, may
from api.console import session as console_session
from api.context import RequestState, current_request
from api.refusals import reason_of, status_of
from habilitations import notifications
from habilitations.models import Agent
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind, Refused

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
# No script at all, styles from our own origin only, forms posted only to ourselves.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Console events read like admin API events (detection rules and reports know this channel).
CHANNEL = "admin-api"


def secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def attachment(download: Download) -> Response:
    disposition = f'attachment; filename="{download.filename}"'
    return secured(
        Response(download.content, media_type=download.media_type, headers={"Content-Disposition": disposition})
    )


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    return secured(response)


def redirect(url: str) -> Response:
    # 303: after a form, the browser follows with a GET.
    return secured(RedirectResponse(url, status_code=303))


@dataclass(frozen=True)
class Download:
    """A file a page's work made, sent as an attachment instead of a page."""

    content: bytes | str
    media_type: str
    filename: str


@dataclass
class Page:
    """What a page's work hands back: its template and context, a redirection or a file."""

    template: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    redirect_to: str | None = None
    status: int = 200
    download: Download | None = None


Work = Callable[[RequestState, Session, Principal, datetime], Page]


def write_audit(state: RequestState, operation: str, status: int) -> None:
    """Commit the request's work with its audit event (the work is dropped on a refusal)."""
    state.audit.channel = CHANNEL
    state.audit.operation = operation
    session = state.session()
    try:
        if status >= 400:
            session.rollback()
        state.services.audit_recorder.record(
            session, state.audit, request_id=state.request_id, http_status=status, occurred_at=state.services.clock()
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _run(state: RequestState, operation: str, work: Work) -> tuple[Page, Refused | None]:
    session = state.session()
    principal = principal_of(state)
    # The menu's line: who is connected, and how many notifications wait for them (those the
    # outbox holds for people are filed in their inboxes first; committed with the page).
    notices.file_pending(session, state.services.clock())
    menu = {
        "moi": display_name(session, principal),
        "non_lues": notifications.unread_count(session, principal.agent_id) if principal.agent_id is not None else 0,
    }
    try:
        page = work(state, session, principal, state.services.clock())
    except Refused as refused:
        state.audit.reason = getattr(refused, "reason", None) or reason_of(refused)
        status = status_of(refused)
        write_audit(state, operation, status)
        return Page(status=status, context=menu), refused
    write_audit(state, operation, page.status)
    for key, value in menu.items():
        page.context.setdefault(key, value)
    return page, None


def sections(principal: Principal | None) -> dict[str, bool]:
    """Which parts of the console this person may open: the menu and the home page show only those.

    A display aid: every page still runs the admin API's own checks when it is opened.
    """
    if principal is None:
        return {"rgc": False, "securite": False, "integration": False}
    organisation_id = principal.organisation_id
    return {
        "rgc": organisation_id is not None and may(principal, organisation_id, LIRE),
        "securite": principal.is_cssi or any(role == "rssi" for role, _ in principal.roles),
        # The integrator's role of an organisation, or the hub's operator.
        "integration": principal.is_operator or any(role == "integrateur" for role, _ in principal.roles),
    }


async def page(request: Request, operation: str, work: Work) -> Response:
    """Authenticate, run ``work`` under the admin checks, audit, then answer."""
    state = current_request()
    token = await console_session.authenticate(request, state)
    if token is None:
        response = redirect("/console/connexion")
        console_session.clear_session(response)
        return response
    result, refused = await anyio.to_thread.run_sync(_run, state, operation, work)
    principal = principal_of(state)
    base = {"principal": principal, "csrf": console_session.csrf_token(token), **sections(principal)}
    if refused is not None:
        context = {**base, **result.context, "code": refused.code, "message": refused.message}
        return render(request, "refus.html", context, status=result.status)
    if result.redirect_to is not None:
        return redirect(result.redirect_to)
    if result.download is not None:
        return attachment(result.download)
    return render(request, result.template, {**base, **result.context}, status=result.status)


async def form(request: Request) -> dict[str, Any] | None:
    """The posted form when its CSRF token matches the session's, else None."""
    data = await request.form()
    fields: dict[str, Any] = {key: data.getlist(key) if len(data.getlist(key)) > 1 else data[key] for key in data}
    token = request.cookies.get(console_session.SESSION_COOKIE)
    if not console_session.csrf_valid(token, fields.get(console_session.CSRF_FIELD)):
        return None
    return fields


class ConsoleRefused(Refused):
    """A refusal of the console itself (a form without its CSRF token, a missing field)."""

    def __init__(self, kind: RefusalKind, code: str, message: str) -> None:
        super().__init__(kind, code, message)
        self.reason = code.lower()


def require_form(fields: dict[str, Any] | None) -> dict[str, Any]:
    """The posted fields, or a refusal when the form did not carry the session's CSRF token."""
    if fields is None:
        raise ConsoleRefused(
            RefusalKind.FORBIDDEN,
            "FORMULAIRE_INVALIDE",
            "Formulaire expiré ou d'une autre origine : rechargez la page.",
        )
    return fields


def display_name(session: Session, principal: Principal) -> str:
    agent = session.get(Agent, principal.agent_id) if principal.agent_id is not None else None
    return f"{agent.prenom} {agent.nom}".strip() if agent is not None else principal.label
