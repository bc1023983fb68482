"""What the gateway raises when France Travail's answer cannot go back through a port as data.

Ports return data or raise the parcours refusal; neither can carry an upstream 4xx or 5xx
with its own status and body. So the gateway raises:

- ``UpstreamAnswer``: France Travail answered something else than the data the port
  returns (an R002, a 404, a 429 after the retries...); it is sent back as France Travail
  sent it (same status, same JSON body with ``codeRetour``, ``codeErreur``, ``codeSortie``...
  untouched, the rate-limit headers a caller needs);
- ``UpstreamUnavailable``: France Travail did not answer in time or could not be reached;
- ``GatewayRefused``: Relais itself refuses to forward (an upstream jeton it no longer holds,
  an organisation without France Travail credentials, an identifier that would change the
  path).

None of them knows how the web layer answers: ``api.refusals`` renders them in the called
API's format. The pipeline still audits the call and rolls back whatever the request wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relais.core.refusals import RefusalKind, Refused


class UpstreamAnswer(Exception):
    """France Travail's answer, to send back as is. ``body`` is decoded JSON, text, or None."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class UpstreamUnavailable(Exception):
    """France Travail did not answer in time or could not be reached (the contracts' 503).

    ``reason`` is a short code for the audit journal (``timeout``, ``token_refused:500``...).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayRefused(Refused):
    """Relais refuses to forward the call. ``reason`` is the audited code (never a value)."""

    def __init__(self, kind: RefusalKind, code: str, message: str, *, reason: str) -> None:
        super().__init__(kind, code, message)
        self.reason = reason


def upstream_code(body: Any) -> str:
    """The contract's code in an upstream error body, for the audit reason (short codes only)."""
    candidates = body if isinstance(body, list) else [body]
    for item in candidates:
        if isinstance(item, dict):
            for name in ("codeRetour", "codeErreur", "codeSortie", "code", "error"):
                value = item.get(name)
                if isinstance(value, str) and len(value) <= 32:
                    return value
    return "-"
