"""The built-in reference store: usagers kept in Relais' own database (the embedded default)."""

from adapters.reference_store.store import ReferenceStore

__all__ = ["ReferenceStore"]
