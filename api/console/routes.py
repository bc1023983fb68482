"""The console's routes, as one Starlette app mounted by ``api.console.mount``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlmodel import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api.console import (
    campagnes,
    connexion,
    incidents,
    integration,
    integrite,
    notifications,
    proconnect,
    rgc,
    securite,
)
from api.console.web import Page, page, redirect, render, secured
from api.context import RequestState
from habilitations.roles import Principal

STATIC = Path(__file__).parent / "static"


async def home(request: Request) -> Response:
    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        state.audit.target = f"agent:{principal.agent_id}"
        # The cards shown come from ``sections`` (api/console/web.py), as the menu's do.
        return Page("accueil.html", {})

    return await page(request, "console.accueil", work)


async def not_found(request: Request, exc: Exception) -> Response:
    return render(request, "refus.html", {"principal": None, "code": "PAGE_INCONNUE", "message": "Page inconnue."}, 404)


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: dict) -> Response:  # type: ignore[override]
        return secured(await super().get_response(path, scope))


def build_console() -> Starlette:
    routes = [
        Route("/console/", home),
        Route("/console", lambda request: redirect("/console/")),
        Route("/console/connexion", connexion.login_page, methods=["GET"]),
        Route("/console/connexion/persona", connexion.persona_login, methods=["POST"]),
        Route("/console/connexion/proconnect", proconnect.start, methods=["GET"]),
        Route("/console/connexion/retour", proconnect.finish, methods=["GET"]),
        Route("/console/deconnexion", connexion.logout, methods=["POST"]),
        # Each area of the console lists its own pages.
        *rgc.ROUTES,
        *campagnes.ROUTES,
        *notifications.ROUTES,
        *securite.ROUTES,
        *incidents.ROUTES,
        *integrite.ROUTES,
        *integration.ROUTES,
        Mount("/console/static", app=_Static(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})
