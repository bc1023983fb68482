"""Outbound connectors: what happens in Relais reaches the organisations' own software.

- ``events``: the domains' events (``relais.core.outbox.publish``) turned into one outbox message
  per subscribed connector, in the change's transaction;
- ``signing``: the HMAC-SHA256 signature scheme of the editor-facing contract;
- ``port`` / ``webhook``: the delivery port and its httpx implementation;
- ``worker``: claims due outbox messages (several processes safely) and delivers them;
- ``registry``: connector configuration (database) and keys;
- ``fake_editor``: a small editor server to try Relais and to test it.
"""
