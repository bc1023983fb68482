"""API profiles: for each served API, its operations and the scopes each one needs, from the specs.

A grant is useful only if it covers every scope of at least one operation (``policy.decide``
requires them all): an RGC picks operations, not raw scopes, and a grant or a reduction that
would leave the agent unable to call anything of the API is refused rather than accepted
silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from specs import load_document, served_documents

_METHODS = ("get", "put", "post", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    operation_id: str
    # The operation's summary in its spec, in French: what the RGC reads.
    label: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class ApiProfile:
    api: str
    title: str
    operations: tuple[Operation, ...]

    def scopes_for(self, operation_ids: Iterable[str]) -> list[str]:
        """Every scope the chosen operations need (unknown ids are ignored)."""
        chosen = set(operation_ids)
        return sorted({scope for op in self.operations if op.operation_id in chosen for scope in op.scopes})

    def callable_with(self, scopes: Iterable[str]) -> list[Operation]:
        held = set(scopes)
        return [op for op in self.operations if op.scopes <= held]


@cache
def api_profiles() -> dict[str, ApiProfile]:
    """Served API name (its spec file's stem) → its profile; APIs without scopes are left out."""
    found: dict[str, ApiProfile] = {}
    for name, title, _ in served_documents():
        document = load_document(name)
        operations = []
        for item in (document.get("paths") or {}).values():
            for method in _METHODS:
                operation = item.get(method)
                if not isinstance(operation, dict):
                    continue
                scopes = {scope for req in operation.get("security") or [] for scope in req.values() for scope in scope}
                if scopes:
                    operations.append(
                        Operation(
                            operation_id=str(operation.get("operationId", "")),
                            label=str(operation.get("summary") or operation.get("operationId", "")),
                            scopes=frozenset(scopes),
                        )
                    )
        if operations:
            api = name.removesuffix(".yaml")
            found[api] = ApiProfile(api=api, title=title, operations=tuple(operations))
    return found


def is_useless(api: str, scopes: Iterable[str]) -> bool:
    """True when the scopes let the agent call no operation of a known API."""
    profile = api_profiles().get(api)
    return profile is not None and not profile.callable_with(scopes)


@cache
def operation_labels() -> dict[str, str]:
    """operationId (as the journal names it) → its French summary, for every served operation."""
    labels: dict[str, str] = {}
    for name, _, _ in served_documents():
        for item in (load_document(name).get("paths") or {}).values():
            for method in _METHODS:
                operation = item.get(method)
                if isinstance(operation, dict) and operation.get("operationId") and operation.get("summary"):
                    labels[str(operation["operationId"]).rpartition(".")[2]] = str(operation["summary"])
    return labels
