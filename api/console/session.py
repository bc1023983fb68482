"""The console's session cookie and CSRF tokens.

The cookie holds the admin token a login issues (Relais' own signed JWT, admin audience): it
is verified on every request by the admin APIs' own bearer check, so a suspension or the end
of a designation applies to the next page, and it expires with the token. CSRF tokens are
derived from a secret the browser's scripts cannot read (the HttpOnly session cookie, or
before login a random HttpOnly cookie): a form posted from another site cannot carry them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response

from api.admin.admin_security import admin_token_info
from api.context import RequestState, current_request

SESSION_COOKIE = "relais_console"
LOGIN_COOKIE = "relais_console_connexion"
CSRF_FIELD = "csrf"


def _secure(request: Request) -> bool:
    """Secure when served over HTTPS, directly or behind a proxy (the public URL says so)."""
    public_url = current_request().services.settings.public_url
    return request.url.scheme == "https" or public_url.startswith("https://")


def set_session(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/console",
        httponly=True,
        secure=_secure(request),
        samesite="lax",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console")


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/console")


def login_secret(request: Request) -> str:
    """The pre-login secret the login form's CSRF token derives from (a new one when missing)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def keep_login_secret(request: Request, response: Response, secret: str) -> None:
    if request.cookies.get(LOGIN_COOKIE) != secret:
        response.set_cookie(
            LOGIN_COOKIE, secret, path="/console", httponly=True, secure=_secure(request), samesite="lax"
        )


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"relais-console-csrf", hashlib.sha256).hexdigest()


def csrf_valid(secret: str | None, given: Any) -> bool:
    return bool(secret) and isinstance(given, str) and hmac.compare_digest(csrf_token(str(secret)), given)


async def authenticate(request: Request, state: RequestState) -> str | None:
    """The session's token when it is valid and its agent active (state.principal is then set)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    # The admin APIs' bearer check itself (it does not read its request argument).
    info = await admin_token_info(token, cast(Any, None))
    return token if info is not None else None
