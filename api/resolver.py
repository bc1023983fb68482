"""Resolve operations to handlers while keeping France Travail's own operationIds.

The specs keep the published operationIds (``RechercherUsagerParDateNaissanceEtNir``,
``recupererContratV2``...) so that clients generated from either spec agree; the handler
is the snake_case function of that name in the module named by
``x-openapi-router-controller``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from connexion.resolver import Resolver

_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def snake_case(operation_id: str) -> str:
    return _BOUNDARY.sub("_", operation_id).lower()


def contract_operation_id(resolved: str) -> str:
    """``api.partner.rechercher_usager.RechercherUsagerParNumeroFranceTravail`` → the spec's id."""
    return resolved.rpartition(".")[2]


class ContractResolver(Resolver):
    def resolve_operation_id(self, operation: Any) -> str:
        if not operation.router_controller:
            raise ValueError(f"operation {operation.operation_id} has no x-openapi-router-controller")
        return f"{operation.router_controller}.{operation.operation_id}"

    def resolve_function_from_operation_id(self, operation_id: str) -> Callable[..., Any]:
        module, _, name = operation_id.rpartition(".")
        return super().resolve_function_from_operation_id(f"{module}.{snake_case(name)}")
