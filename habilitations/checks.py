"""What every state change checks before it moves anything: who acts, and on which values.

Separation of duties and the security officers' hold live here, so that agents, grants,
designations and subscriptions apply them alike. Each check raises ``TransitionRefused``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from habilitations.models import (
    BLOQUE,
    RGC_SUPPLEANT,
    RGC_TITULAIRE,
    STATUTS_ELIGIBLES_RGC,
    SUPPRIME,
    Agent,
    Designation,
)
from habilitations.refusals import TransitionRefused
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind

_CODE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")


# Who acts ------------------------------------------------------------------------------------


def forbidden() -> TransitionRefused:
    return TransitionRefused(
        RefusalKind.FORBIDDEN,
        "role_insuffisant",
        "Action réservée au RGC de l'organisation ou à l'opérateur du hub",
    )


def require_manager(actor: Principal, organisation_id: int) -> None:
    """The organisation's RGC (titular or deputy) or the hub operator."""
    if not (actor.is_operator or actor.is_rgc_of(organisation_id)):
        raise forbidden()


def require_security(actor: Principal) -> None:
    """France Travail's CSSI or the hub operator."""
    if not (actor.is_operator or actor.is_cssi):
        raise TransitionRefused(
            RefusalKind.FORBIDDEN,
            "role_insuffisant",
            "Action réservée au CSSI de France Travail ou à l'opérateur du hub",
        )


def require_security_if_held(actor: Principal, etat: str) -> None:
    """A security block stays until the CSSI or the operator acts: the RGC can neither lift it
    nor get round it by revoking, deleting or editing the blocked account or grant."""
    if etat == BLOQUE:
        require_security(actor)


def require_security_for_role_holder(actor: Principal, designations: Sequence[Designation]) -> None:
    """A role holder (titular or deputy RGC, RSSI, CSSI, operator) is the CSSI's or the
    operator's to revoke, block, delete or rebind: otherwise a deputy would end the titular's
    or the RSSI's designations indirectly, by revoking their account."""
    if designations:
        require_security(actor)


def require_custodian(actor: Principal, organisation_id: int, designations: Sequence[Designation]) -> None:
    """Who deletes an account or changes its binding or employment status: for a role holder
    the CSSI or the operator, for anyone else the organisation's RGC or the operator."""
    if designations:
        require_security(actor)
    else:
        require_manager(actor, organisation_id)


def require_eligible(role: str, statut_emploi: str | None) -> None:
    """The convention's condition on an RGC (titular or deputy): a civil servant or contract
    agent of the organisation. Checked when designated and on every change while they hold it."""
    if role in (RGC_TITULAIRE, RGC_SUPPLEANT) and statut_emploi not in STATUTS_ELIGIBLES_RGC:
        raise TransitionRefused(
            RefusalKind.INVALID,
            "statut_non_eligible",
            "Le RGC est un fonctionnaire ou un contractuel de l'organisation",
        )


def require_operator(actor: Principal) -> None:
    if not actor.is_operator:
        raise TransitionRefused(RefusalKind.FORBIDDEN, "role_insuffisant", "Action réservée à l'opérateur du hub")


def require_not_self(actor: Principal, agent: Agent, verb: str) -> None:
    """Separation of duties: an RGC never grants or extends their own habilitations."""
    if actor.agent_id is not None and actor.agent_id == agent.id:
        raise TransitionRefused(
            RefusalKind.FORBIDDEN,
            "separation_des_roles",
            f"Un RGC ne peut pas {verb} ses propres habilitations : un autre RGC de l'organisation doit le faire",
        )


def require_not_deleted(agent: Agent) -> None:
    if agent.etat == SUPPRIME:
        raise TransitionRefused(RefusalKind.CONFLICT, "etat_incompatible", "Cet agent est supprimé")


# Which values ---------------------------------------------------------------------------------


def check_code(code: str) -> None:
    """A reason (``motif``) is a code, never free text: it goes to the audit trail."""
    if not isinstance(code, str) or not _CODE.match(code):
        raise TransitionRefused(
            RefusalKind.INVALID,
            "motif_invalide",
            "Motif obligatoire : un code en minuscules (lettres, chiffres, _ . -)",
        )


def check_text(name: str, value: Any, max_length: int, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_length:
        raise TransitionRefused(
            RefusalKind.INVALID, "champ_invalide", f"Champ {name} invalide ({max_length} caractères au plus)"
        )


def clean_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes without repeats, in their order; each a non-empty word, at least one."""
    cleaned: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str) or not scope or len(scope) > 128 or any(c.isspace() for c in scope):
            raise TransitionRefused(
                RefusalKind.INVALID, "scope_invalide", "Scope invalide : un mot non vide, sans espace"
            )
        if scope not in cleaned:
            cleaned.append(scope)
    if not cleaned:
        raise TransitionRefused(RefusalKind.INVALID, "scopes_requis", "Au moins un scope est requis")
    return cleaned
