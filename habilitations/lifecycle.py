"""The former home of every state change, kept as an import path for the import only.

The state changes now live by aggregate: ``agents`` (creating and correcting agents and
technical identities), ``agent_states`` (suspension, block, revocation, reactivation,
deletion), ``grants``, ``designations``, ``subscriptions``, ``transitional`` (the identity
``*`` of clients older than enforcement) and ``overrides`` (security blocks). Import from
those modules: this one only re-exports them for ``relais.importer``, which still names
``habilitations.lifecycle`` and ``LifecycleRefused``; delete it once the import does not.
"""

from __future__ import annotations

from habilitations.agents import create_agent, create_technical_identity, update_agent
from habilitations.designations import designate, end_designation
from habilitations.grants import grant_habilitation, revoke_habilitation
from habilitations.lookups import current_designations
from habilitations.refusals import TransitionRefused
from habilitations.subscriptions import set_subscription

# The old name of the refusal of a state change (it carried an HTTP status; it no longer does).
LifecycleRefused = TransitionRefused

__all__ = [
    "LifecycleRefused",
    "create_agent",
    "create_technical_identity",
    "current_designations",
    "designate",
    "end_designation",
    "grant_habilitation",
    "revoke_habilitation",
    "set_subscription",
    "update_agent",
]
