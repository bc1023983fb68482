"""Where a domain refusal becomes an HTTP answer: the one mapping of the web layer.

Domains raise ``relais.core.refusals.Refused`` (or their root subclass) with a kind, a code
and a French message; they never know statuses. Handlers catch the root and call one of the
renderers below, which note the audited reason and answer in the called API's error format.
An operation whose contract wants another status for a kind (e.g. an unknown reference that
the contract calls a bad request) passes its own ``statuses``.
"""

from __future__ import annotations

from collections.abc import Mapping

from connexion.lifecycle import ConnexionResponse

from api.errors import erreur_partenaire, note_refusal
from relais.core.refusals import RefusalKind, Refused

STATUS: Mapping[RefusalKind, int] = {
    RefusalKind.INVALID: 400,
    RefusalKind.FORBIDDEN: 403,
    RefusalKind.UNKNOWN: 404,
    RefusalKind.CONFLICT: 409,
    RefusalKind.UNAVAILABLE: 503,
}


def status_of(refused: Refused, statuses: Mapping[RefusalKind, int] = STATUS) -> int:
    return statuses.get(refused.kind, STATUS[refused.kind])


def refusal_response(
    refused: Refused, *, reason: str, statuses: Mapping[RefusalKind, int] = STATUS
) -> ConnexionResponse:
    """Answer ``{"code", "message"}`` (the partner and admin APIs' error body), audited with ``reason``.

    ``reason`` is a code, never a value: it goes to the audit journal.
    """
    note_refusal(reason)
    return erreur_partenaire(status_of(refused, statuses), refused.code, refused.message)
