"""Adapters: how Relais talks to the world outside its domains, one independent package each.

- ``reference_store``: the partner ports (``parcours/ports.py``) served from Relais' own
  database, on the parcours domain's rules (the embedded default);
- ``france_travail``: the same ports served by forwarding to France Travail (gateway mode);
- ``outbound``: connectors delivering domain events (signed webhooks, mail) and their worker;
- ``inbound``: files and pull connectors feeding the parcours domain.

Adapters import the domains and the kernel, never the web shell (``api``) nor each other;
they raise domain refusals or their own exceptions and never build an HTTP answer.
"""
