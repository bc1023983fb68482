"""Campagnes de revue annuelle des habilitations (RGC): liste, décisions groupées, rapports."""

from __future__ import annotations

from starlette.routing import BaseRoute

# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = []
