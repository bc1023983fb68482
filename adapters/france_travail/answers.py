"""What the gateway answers when France Travail's answer cannot go through a port as data.

Ports return data or raise ``Refused``; neither can carry an upstream 4xx or 5xx with its own
status and body. The gateway raises ``UpstreamAnswer`` instead and ``handle_upstream_answer``
(registered by the app factory) sends it as France Travail sent it: same status, same JSON
body (``codeRetour``, ``codeErreur``, ``codeSortie``... untouched), re-encoded in UTF-8, with
the rate-limit headers a caller needs. The pipeline still audits the call and, the status
being 400 or more, rolls back whatever the request wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connexion.lifecycle import ConnexionRequest, ConnexionResponse

from api.errors import (
    R001,
    R997,
    R999,
    Family,
    erreur_partenaire,
    erreurs_activites,
    family_of,
    json_response,
    note_refusal,
    resultat,
)

# Upstream headers worth passing on: what a client needs to wait before calling again.
FORWARDED_HEADERS = (
    "retry-after",
    "x-ratelimit-burst-capacity-clientidlimiter",
    "x-ratelimit-remaining-clientidlimiter",
)
INDISPONIBLE = "SERVICE_INDISPONIBLE"
INDISPONIBLE_MESSAGE = "Service France Travail indisponible, veuillez réessayer ultérieurement"


class UpstreamAnswer(Exception):
    """France Travail's answer, to send back as is. ``body`` is decoded JSON, or text."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class UpstreamUnavailable(Exception):
    """France Travail did not answer in time or could not be reached: the contract's 503."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayRefusal(Exception):
    """Relais itself refuses to forward (an unknown or expired jeton reference)."""

    def __init__(self, status: int, code: str, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason


async def handle_upstream_answer(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    if isinstance(exc, UpstreamUnavailable):
        note_refusal(f"upstream_unavailable:{exc.reason}")
        return unavailable(request.url.path)
    if isinstance(exc, GatewayRefusal):
        note_refusal(exc.reason)
        family = family_of(request.url.path)
        if family is Family.RECHERCHE:
            return json_response(exc.status, resultat(R001 if exc.status == 403 else R997))
        if family is Family.ACTIVITES:
            return erreurs_activites(exc.status, exc.code, exc.message)
        return erreur_partenaire(exc.status, exc.code, exc.message)
    assert isinstance(exc, UpstreamAnswer)
    note_refusal(f"upstream:{exc.status}:{_code(exc.body)}")
    return passthrough(exc)


def unavailable(path: str) -> ConnexionResponse:
    family = family_of(path)
    if family is Family.RECHERCHE:
        return json_response(503, resultat(R999))
    if family is Family.ACTIVITES:
        return erreurs_activites(503, INDISPONIBLE, INDISPONIBLE_MESSAGE)
    return erreur_partenaire(503, INDISPONIBLE, INDISPONIBLE_MESSAGE)


def passthrough(answer: UpstreamAnswer) -> ConnexionResponse:
    if isinstance(answer.body, str):
        return ConnexionResponse(
            status_code=answer.status,
            mimetype="text/plain",
            content_type="text/plain; charset=utf-8",
            body=answer.body.encode("utf-8"),
            headers=answer.headers,
        )
    if answer.body is None:
        return ConnexionResponse(status_code=answer.status, headers=answer.headers)
    return json_response(answer.status, answer.body, answer.headers)


def _code(body: Any) -> str:
    """The contract's code in an upstream error body, for the audit reason (codes only)."""
    candidates = body if isinstance(body, list) else [body]
    for item in candidates:
        if isinstance(item, dict):
            for name in ("codeRetour", "codeErreur", "codeSortie", "code", "error"):
                value = item.get(name)
                if isinstance(value, str) and len(value) <= 32:
                    return value
    return "-"
