"""The one shape of a refusal: a domain rule says no, in its own words, never in HTTP.

Every domain has one root refusal class deriving from ``Refused`` (``parcours.ports.Refused``
for the parcours rules, ``habilitations.refusals.HabilitationRefused``,
``audit.refusals.AuditRefused``) and raises it, or a subclass, with the same three
arguments: a ``RefusalKind`` (what sort of no), a stable ``code`` (the contract's code where
the contract names one, else a domain code such as ``DEJA_HABILITE``) and a French
``message`` a person can act on. The web layer (``api/refusals.py``) maps a refusal to each
API's error format and status in one place; the CLI prints the message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class RefusalKind(enum.Enum):
    """What sort of refusal; the web layer turns each kind into a status."""

    INVALID = "invalid"  # a value or a combination of values the rules forbid (400)
    UNKNOWN = "unknown"  # the designated object does not exist, or not for this caller (404)
    CONFLICT = "conflict"  # the object is not (any more) in a state that allows the call (409)
    FORBIDDEN = "forbidden"  # the caller may not do this (403)
    UNAVAILABLE = "unavailable"  # a service the rule depends on does not answer (503)


class Refused(Exception):
    """A call a rule refuses. Nothing was changed when this is raised."""

    def __init__(
        self,
        kind: RefusalKind,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code)
        self.kind = kind
        self.code = code
        self.message = message
        # Value-free structured details (field names, counts), safe for logs and answers.
        self.details = dict(details) if details else None
