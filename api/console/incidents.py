"""Le tableau des incidents de sécurité (RSSI, CSSI): délai de 48 h, gravité, notifications."""

from __future__ import annotations

from starlette.routing import BaseRoute

# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = []
