"""Where the console joins the app: ``/console/…`` and ``/`` (which leads to it).

An ASGI middleware placed inside the request pipeline (so each page has its request state,
its unit of work and its request id) and before connexion's routing, whose root API would
otherwise answer every other path.
"""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.console.routes import build_console


class ConsoleMount:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.console = build_console()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/":
            await RedirectResponse("/console/", status_code=307)(scope, receive, send)
        elif path == "/console" or path.startswith("/console/"):
            await self.console(scope, receive, send)
        else:
            await self.app(scope, receive, send)
