"""Synthetic demonstration data for ``relais demo``: organisations, clients and usagers.

Everything here is invented (names, NIRs, addresses) and generated deterministically, so
that the credentials and identifiers printed by ``relais demo`` stay the same everywhere.
"""
