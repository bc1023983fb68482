"""Handlers of France Travail's partner APIs and of Relais' producer feed (alimentation)."""
