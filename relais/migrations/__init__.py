"""Alembic migrations of the Relais database (run with ``relais db upgrade``)."""
