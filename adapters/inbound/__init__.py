"""Inbound feeds: what editors send Relais (flat files, their own REST APIs)."""
