"""Intégrateur et opérateur: état des connecteurs, rejeu, dépôt de fichiers CSV avec essai à blanc."""

from __future__ import annotations

from starlette.routing import BaseRoute

# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = []
