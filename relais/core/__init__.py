"""The kernel: what every domain, adapter and shell of Relais builds on.

Configuration, database, keys and field encryption, NIR, jetons, clock helpers, outbox,
observability, rate limiting, access tokens, the shared tables (organisations, clients), the
audit ports (``auditing``) and the refusal root (``refusals``). It imports nothing else of
Relais, so that any package may use it without pulling in the others.
"""
