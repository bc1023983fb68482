"""La page d'intégrité du journal (RSSI, CSSI): dernier point de contrôle, vérification, clé publique."""

from __future__ import annotations

from starlette.routing import BaseRoute

# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = []
