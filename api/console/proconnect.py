"""ProConnect login for the console: the admin API's own login flow, ending in a session cookie.

The start and the return are ``api.admin.connexion_agent``'s handlers themselves (same
checks, same audit facts); the console only keeps the admin token they issue in its cookie
instead of showing it. ProConnect must send the browser back to ``/console/connexion/retour``:
the operator registers that URL and sets ``RELAIS_PROCONNECT_REDIRECT_URI`` to it.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from connexion.lifecycle import ConnexionResponse
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.admin.connexion_agent import commencer_connexion, terminer_connexion
from api.console import session as console_session
from api.console.connexion import login_error
from api.console.web import redirect, secured, write_audit
from api.context import current_request

OPERATION = "console.connexion.proconnect"


async def start(request: Request) -> Response:
    state = current_request()
    answer = await commencer_connexion()
    # Commits the login attempt (state, nonce, verifier) with the event, as the pipeline does.
    await anyio.to_thread.run_sync(write_audit, state, "console.connexion.debut", answer.status_code)
    location = (answer.headers or {}).get("Location")
    if answer.status_code != 302 or not location:
        return login_error(request, _message(answer), answer.status_code)
    return secured(RedirectResponse(location, status_code=302))


async def finish(request: Request) -> Response:
    state = current_request()
    params = request.query_params
    if "state" not in params:
        return login_error(request, "Retour de ProConnect incomplet : reconnectez-vous.", 400)
    answer = await terminer_connexion(
        state=params["state"], code=params.get("code"), iss=params.get("iss"), error=params.get("error")
    )
    await anyio.to_thread.run_sync(write_audit, state, OPERATION, answer.status_code)
    if answer.status_code != 200:
        return login_error(request, _message(answer), answer.status_code)
    body = _body(answer)
    response = redirect("/console/")
    console_session.set_session(request, response, str(body["jetonAcces"]), int(body["expireDans"]))
    return response


def _body(answer: ConnexionResponse) -> dict[str, Any]:
    raw = answer.body if isinstance(answer.body, bytes | str) else b"{}"
    found = json.loads(raw or b"{}")
    return found if isinstance(found, dict) else {}


def _message(answer: ConnexionResponse) -> str:
    return str(_body(answer).get("message") or "Connexion ProConnect impossible pour le moment.")
