"""The web shell: one connexion app serving every contract in ``specs/``.

``app`` builds it (the services, the backends of the configured mode, the middlewares, the
error handlers); ``pipeline`` wraps every call (request id, audit event before the response,
metrics); ``security`` and ``admin.admin_security`` check bearer tokens and habilitations;
handlers live in ``partner/`` (France Travail's partner APIs and Relais' producer feed) and
``admin/`` (habilitations, audit, connectors, agent login), resolved by operationId
(``resolver``). Only this layer knows HTTP: ``errors`` renders each API's error format and
``refusals`` maps domain refusals and the gateway's outcomes to it. ``context`` holds the
per-request state handlers read; what they call below takes explicit arguments.
"""
