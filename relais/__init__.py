"""Relais: interoperability hub for the réseau pour l'emploi.

The package holds the two ends of the house (the layers are drawn in ``docs/architecture.md``
and checked by ``lint-imports``):

- ``relais.core``, the kernel every other package builds on: configuration, database, keys,
  NIR, jetons, clock helpers, outbox, observability, rate limiting, access tokens, the shared
  tables (organisations, clients), the audit ports and the refusal root. It imports nothing
  else of Relais;
- the shells that assemble everything: ``relais.cli`` (the ``relais`` command, one module per
  command group), ``relais.importer`` and ``relais.demo`` (datasets), ``relais.migrations``,
  ``relais.schema`` and ``relais.migrate`` (the database schema).

The web shell is ``api/``; the domains are ``parcours/``, ``habilitations/`` and ``audit/``;
``adapters/`` connect them to the reference store, France Travail and the editors' software.
"""
