"""Handlers of the specs in ``specs/``, resolved by operationId (see api.resolver)."""
