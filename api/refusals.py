"""Where a refusal becomes an HTTP answer: the one mapping of the web layer.

Domains raise ``relais.core.refusals.Refused`` (or their root subclass) with a kind, a code
and a French message; they never know statuses. Handlers catch the root and call one of the
renderers below, which note the audited reason and answer in the called API's error format:

- ``refusal_response``: ``{codeHttp, codeErreur, message}``, the per-usager, producer-feed and
  admin APIs' shape;
- ``activites_refusal_response``: Activités opérationnelles' array of ``{code, message, details}``;
- ``sanctions_refusal_response``: Gestion des sanctions RSA's shape, with its ``codeSortie``
  (``detailManquement``); ``sanctions_sortie_response``: its writes' "200 + codeSortie".

An operation whose contract wants another status for a kind (e.g. an unknown reference that
the contract calls a bad request) passes its own ``statuses``; one that wants another status
for a single code passes ``by_code``.

The France Travail gateway's refusals and upstream answers escape the handlers; the app
factory registers ``handle_gateway_refused``, ``handle_upstream_unavailable`` and
``handle_upstream_answer`` for them, which answer in the format of the API called (its family).
"""

from __future__ import annotations

from collections.abc import Mapping

from connexion.lifecycle import ConnexionRequest, ConnexionResponse

from adapters.france_travail.errors import GatewayRefused, UpstreamAnswer, UpstreamUnavailable, upstream_code
from api.context import current_request
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
from parcours import sanctions
from relais.core.refusals import RefusalKind, Refused

STATUS: Mapping[RefusalKind, int] = {
    RefusalKind.INVALID: 400,
    RefusalKind.FORBIDDEN: 403,
    RefusalKind.UNKNOWN: 404,
    RefusalKind.CONFLICT: 409,
    RefusalKind.UNAVAILABLE: 503,
}
# Activités opérationnelles' contract lists one error status: every refusal is its 400.
ACTIVITES_STATUS: Mapping[RefusalKind, int] = {kind: 400 for kind in RefusalKind}


def status_of(
    refused: Refused, statuses: Mapping[RefusalKind, int] = STATUS, *, by_code: Mapping[str, int] | None = None
) -> int:
    if by_code is not None and refused.code in by_code:
        return by_code[refused.code]
    return statuses.get(refused.kind, STATUS[refused.kind])


def reason_of(refused: Refused) -> str:
    """The audited reason of a domain refusal: its kind and code (a code, never a value)."""
    return f"{refused.kind.value}:{refused.code}"


def refusal_response(
    refused: Refused,
    *,
    reason: str | None = None,
    statuses: Mapping[RefusalKind, int] = STATUS,
    by_code: Mapping[str, int] | None = None,
) -> ConnexionResponse:
    """Answer ``{"codeHttp", "codeErreur", "message"}``, audited with ``reason`` (``reason_of`` by default).

    ``reason`` is a code, never a value: it goes to the audit journal.
    """
    note_refusal(reason or reason_of(refused))
    return erreur_partenaire(status_of(refused, statuses, by_code=by_code), refused.code, refused.message)


def activites_refusal_response(refused: Refused) -> ConnexionResponse:
    """A refusal of Activités opérationnelles: ``[{code, message, details}]``."""
    note_refusal(reason_of(refused))
    return erreurs_activites(status_of(refused, ACTIVITES_STATUS), refused.code, refused.message)


# Gestion des sanctions RSA: codeSortie -> (HTTP status, short name used as ``codeErreur``).
SANCTIONS_SORTIES: Mapping[str, tuple[int, str]] = {
    sanctions.C_INCONNUE: (404, "CONSEQUENCE_INCONNUE"),
    sanctions.C_ETAT: (409, "EVENEMENT_NON_AUTORISE"),
    sanctions.C_OBLIGATOIRE: (400, "DONNEE_OBLIGATOIRE_ABSENTE"),
    sanctions.C_VALEUR: (400, "VALEUR_NON_CONFORME"),
    sanctions.C_CONFLIT: (409, "CONFLIT_MODIFICATION"),
    sanctions.C_ORGANISATION: (403, "ORGANISATION_NON_HABILITEE"),
    sanctions.C_RADIATION: (409, "RADIATION_DEJA_DEMANDEE"),
    sanctions.C_DEPARTEMENT: (400, "DEPARTEMENT_INCONNU"),
    sanctions.C_IDENTIFIANT: (409, "IDENTIFIANT_DEJA_UTILISE"),
    sanctions.C_USAGER: (404, "USAGER_INCONNU"),
}


def sanctions_refusal_response(refused: Refused) -> ConnexionResponse:
    """A refusal of the sanctions rules: its own status per codeSortie, in both error shapes.

    The body carries both ``codeSortie`` and ``{codeHttp, codeErreur, message}``, so that a
    client checking either stops (choix Relais, documented in the spec).
    """
    note_refusal(reason_of(refused))
    status, nom = SANCTIONS_SORTIES.get(refused.code, (status_of(refused), refused.code))
    return json_response(
        status, {"codeHttp": status, "codeErreur": nom, "message": refused.message, "codeSortie": refused.code}
    )


def sanctions_sortie_response(refused: Refused) -> ConnexionResponse:
    """A refusal of a sanctions write, as FT's diagram answers it: "200 - Demande traitée + Code
    sortie à traduire pour action" (``API_GestionSanctionRSA.excalidraw``).

    The body is ``{codeSortie, message}``. A 200 is committed by the pipeline, so the
    request's unit of work is rolled back here first: a refused call changes nothing.
    """
    if refused.code not in SANCTIONS_SORTIES:
        return sanctions_refusal_response(refused)
    note_refusal(reason_of(refused))
    state = current_request()
    if state.has_session:
        state.session().rollback()
    return json_response(200, {"codeSortie": refused.code, "message": refused.message})


# The France Travail gateway ----------------------------------------------------------------

# An upstream jeton Relais no longer holds is an expired jeton to the caller (search again),
# as for Relais' own jetons: 401.
GATEWAY_STATUS: Mapping[RefusalKind, int] = {**STATUS, RefusalKind.UNKNOWN: 401}
INDISPONIBLE = "SERVICE_INDISPONIBLE"
INDISPONIBLE_MESSAGE = "Service France Travail indisponible, veuillez réessayer ultérieurement"


async def handle_gateway_refused(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, GatewayRefused)
    return gateway_refusal_response(request.url.path, exc)


def gateway_refusal_response(path: str, refused: GatewayRefused) -> ConnexionResponse:
    note_refusal(refused.reason)
    status = status_of(refused, GATEWAY_STATUS)
    family = family_of(path)
    if family is Family.RECHERCHE:
        return json_response(status, resultat(R001 if status == 403 else R997))
    if family is Family.ACTIVITES:
        return erreurs_activites(status, refused.code, refused.message)
    return erreur_partenaire(status, refused.code, refused.message)


async def handle_upstream_unavailable(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, UpstreamUnavailable)
    note_refusal(f"upstream_unavailable:{exc.reason}")
    return unavailable_response(request.url.path)


def unavailable_response(path: str) -> ConnexionResponse:
    """The contracts' 503, in the called API's format."""
    family = family_of(path)
    if family is Family.RECHERCHE:
        return json_response(503, resultat(R999))
    if family is Family.ACTIVITES:
        return erreurs_activites(503, INDISPONIBLE, INDISPONIBLE_MESSAGE)
    return erreur_partenaire(503, INDISPONIBLE, INDISPONIBLE_MESSAGE)


async def handle_upstream_answer(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, UpstreamAnswer)
    note_refusal(f"upstream:{exc.status}:{upstream_code(exc.body)}")
    return passthrough(exc)


def passthrough(answer: UpstreamAnswer) -> ConnexionResponse:
    """France Travail's answer as it sent it: same status, same body (re-encoded in UTF-8)."""
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
