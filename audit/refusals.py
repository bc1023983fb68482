"""The audit domain's one refusal root.

Everything the audit domain (or the audit API acting on it) refuses — an unknown incident, a
forbidden transition, an unusable search filter or cursor, a caller outside the security
officers — is an ``AuditRefused`` with the kernel's convention: a ``RefusalKind``, a stable
code and a French, value-free message. The web shell maps it to a status (``api/refusals.py``);
the CLI prints the message.
"""

from __future__ import annotations

from relais.core.refusals import RefusalKind, Refused

__all__ = ["AuditRefused", "RefusalKind"]


class AuditRefused(Refused):
    """A call the audit rules refuse. Nothing was changed when this is raised."""
