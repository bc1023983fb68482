"""Handlers of the specs in ``specs/``, resolved by operationId (see relais.resolver)."""
