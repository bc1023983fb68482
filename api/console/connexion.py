"""Logging in and out of the console: demo personas (when enabled) and logout.

A login ends in the session cookie holding an admin token, never in a token shown on screen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from api.console import personas
from api.console import session as console_session
from api.console.web import Page, form, page, redirect, render, require_form, write_audit
from api.context import RequestState, current_request
from habilitations import login
from habilitations.roles import Principal
from relais.core.admin_tokens import issue_admin_token

OPERATION_LOGIN = "console.connexion"


async def login_page(request: Request) -> Response:
    return _login_render(request, error=None)


def _login_render(request: Request, *, error: str | None, status: int = 200) -> Response:
    state = current_request()
    state.audit.operation = "console.connexion.page"
    settings = state.services.settings
    secret = console_session.login_secret(request)
    response = render(
        request,
        "connexion.html",
        {
            "principal": None,
            "csrf": console_session.csrf_token(secret),
            "personas": personas.PERSONAS if personas.enabled(settings) else (),
            "proconnect": login.is_configured(settings),
            "erreur": error,
        },
        status=status,
    )
    console_session.keep_login_secret(request, response, secret)
    return response


def login_error(request: Request, message: str, status: int) -> Response:
    """The login page again, saying why the login failed."""
    return _login_render(request, error=message, status=status)


async def persona_login(request: Request) -> Response:
    state = current_request()
    settings = state.services.settings
    data = await request.form()
    secret = request.cookies.get(console_session.LOGIN_COOKIE)
    if not console_session.csrf_valid(secret, data.get(console_session.CSRF_FIELD)):
        return _login_render(request, error="Formulaire expiré : réessayez.", status=403)
    if not personas.enabled(settings):
        state.audit.reason = "personas_desactivees"
        await anyio.to_thread.run_sync(write_audit, state, OPERATION_LOGIN, 403)
        message = "La connexion par persona n'est pas activée sur ce Relais : connectez-vous avec ProConnect."
        return _login_render(request, error=message, status=403)
    persona = personas.BY_KEY.get(str(data.get("persona", "")))
    admitted = await anyio.to_thread.run_sync(_admit, state, persona)
    if admitted is None:
        return _login_render(request, error="Persona inconnue ou compte inactif.", status=403)
    agent_id, organisation = admitted
    now = state.services.clock()
    token = issue_admin_token(
        state.services.keys,
        settings,
        now=now,
        agent_id=agent_id,
        organisation=organisation,
        acr=personas.ACR,
        auth_time=now,
    )
    response = redirect("/console/")
    console_session.set_session(request, response, token, settings.admin_token_ttl_seconds)
    return response


def _admit(state: RequestState, persona: personas.Persona | None) -> tuple[int, str] | None:
    session = state.session()
    now = state.services.clock()
    admitted = (
        personas.provision(session, persona, now, recorder=state.services.audit_recorder, request_id=state.request_id)
        if persona is not None
        else None
    )
    state.audit.acr = personas.ACR
    state.audit.details = {"persona": persona.key if persona else None}
    if admitted is None:
        state.audit.reason = "persona_inconnue"
        write_audit(state, OPERATION_LOGIN, 403)
        return None
    state.audit.agent_id, state.audit.organisation = admitted
    state.audit.target = f"agent:{admitted[0]}"
    write_audit(state, OPERATION_LOGIN, 200)
    return admitted


async def logout(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Any, principal: Principal, now: datetime) -> Page:
        require_form(fields)
        return Page(redirect_to="/console/connexion")

    response = await page(request, "console.deconnexion", work)
    if response.status_code == 303:
        console_session.clear_session(response)
    return response
