"""La boîte de notifications de la personne connectée (tous les rôles)."""

from __future__ import annotations

from starlette.routing import BaseRoute

# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = []
