"""Relais: interoperability hub for the réseau pour l'emploi.

This package holds what every API shares: configuration, storage, keys, identifiers,
the app factory and the command line. The partner APIs live in ``api/``, backends in
``adapters/``, client and agent rights in ``habilitations/``, the journal in ``audit/``.
"""
