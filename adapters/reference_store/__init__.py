"""The built-in reference store: the partner ports served from Relais' own database.

It implements ``parcours.ports`` on the parcours domain's tables and rules (the embedded
default, ``RELAIS_BACKEND=reference``); ``build_reference_backends`` assembles its ports.
"""

from adapters.reference_store.backends import build_reference_backends
from adapters.reference_store.store import ReferenceStore

__all__ = ["ReferenceStore", "build_reference_backends"]
