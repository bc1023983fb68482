"""What the habilitations domain refuses, in its own words: one root, ``HabilitationRefused``.

Every refusal of the domain (a state change the rules forbid, a campaign decision, a login, a
SIRET the directory cannot take) is a ``HabilitationRefused`` built like every kernel refusal:
a ``RefusalKind``, a stable ``code`` and a French ``message``. Nothing is changed when one
is raised. The web layer turns the kind into a status (``api/refusals.py``); the command
line prints the message.

Each refusal also names the ``reason`` the refused call's audit event records (a code, never
a value): by default its code, prefixed by the layer that refused for the subclasses that
have one (``lifecycle:separation_des_roles``, ``campagne:auto_revue_interdite``), or a finer
code given explicitly (a login refused for ``id_token_expired``). The subclasses exist for
that reason and for what callers must tell apart, e.g. a campaign records a refused state
change as its remediation's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from relais.core.refusals import RefusalKind, Refused


class HabilitationRefused(Refused):
    """The root refusal of the habilitations domain."""

    # Prefix of the default audit reason: the layer that refused, when it has a name.
    layer: ClassVar[str | None] = None

    def __init__(
        self,
        kind: RefusalKind,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(kind, code, message, details=details)
        default = code.lower() if self.layer is None else f"{self.layer}:{code.lower()}"
        self.reason = reason or default


class TransitionRefused(HabilitationRefused):
    """A state change of an agent, a grant, a designation or a subscription the rules refuse.

    Its codes are lower case (``separation_des_roles``): the admin API answers them upper case.
    """

    layer = "lifecycle"


class CampaignRefused(HabilitationRefused):
    """A review campaign request that cannot be honoured."""

    layer = "campagne"


class LoginRefused(HabilitationRefused):
    """A ProConnect login that ends without a token.

    ``reason`` (required) says why for the audit trail only: the person sees a generic
    message. ``keep_writes`` is True when the refusal itself changed something that must
    stand (a suspension for inactivity decided at this login), although a refused call's
    work is otherwise rolled back.
    """

    def __init__(
        self,
        kind: RefusalKind,
        code: str,
        message: str,
        *,
        reason: str,
        keep_writes: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(kind, code, message, details=details, reason=reason)
        self.keep_writes = keep_writes
