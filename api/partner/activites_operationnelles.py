"""Gestion des activités opérationnelles v1 and v2: a structure's open to-do list.

No jeton usager: the caller's organisation is the structure whose list is read. v1 answers
a bare array of at most ``PAGE_SIZE`` activities; v2 answers ``{activites, cursor}`` and
pages with ``cursor``. A 400 is an array of ``{code, message, details}`` (contract §5).
"""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import RequestState, current_request
from api.errors import json_response
from api.partner.caller import caller_of
from api.refusals import activites_refusal_response
from parcours.ports import ActivitesPage, Refused

# "Les 1000 activités les plus prioritaires" (SIP Postman); tests lower it to page cheaply.
PAGE_SIZE = 1000
# The sanctions attribute is named ``identifiantConsequenceSanction`` from v2 on, and
# ``idConsequenceSanction`` in v1 (SIP Postman description).
ATTRIBUT_SANCTION_V2 = "identifiantConsequenceSanction"
ATTRIBUT_SANCTION_V1 = "idConsequenceSanction"


def chercher_activites(
    codeActivite: str | None = None,
    codeFamille: str | None = None,
    codeDomaine: str | None = None,
) -> ConnexionResponse:
    page = _chercher(current_request(), codeActivite, codeFamille, codeDomaine, None)
    if isinstance(page, ConnexionResponse):
        return page
    if not page.activites:
        return ConnexionResponse(status_code=204)
    return json_response(200, [_v1(activite) for activite in page.activites])


def chercher_activites_v2(
    codeActivite: str | None = None,
    codeFamille: str | None = None,
    codeDomaine: str | None = None,
    cursor: str | None = None,
) -> ConnexionResponse:
    page = _chercher(current_request(), codeActivite, codeFamille, codeDomaine, cursor)
    if isinstance(page, ConnexionResponse):
        return page
    if not page.activites:
        return ConnexionResponse(status_code=204)
    body: dict[str, Any] = {"activites": page.activites}
    if page.cursor is not None:
        body["cursor"] = page.cursor
    return json_response(200, body)


def _chercher(
    state: RequestState,
    code_activite: str | None,
    code_famille: str | None,
    code_domaine: str | None,
    cursor: str | None,
) -> ActivitesPage | ConnexionResponse:
    try:
        return state.services.backends.activites.chercher(
            caller_of(state),
            code_activite=code_activite,
            code_famille=code_famille,
            code_domaine=code_domaine,
            cursor=cursor,
            limit=PAGE_SIZE,
        )
    except Refused as refused:
        return activites_refusal_response(refused)


def _v1(activite: dict[str, Any]) -> dict[str, Any]:
    attributs = [
        {**item, "nom": ATTRIBUT_SANCTION_V1} if item.get("nom") == ATTRIBUT_SANCTION_V2 else item
        for item in activite.get("attributsSpecifiques", [])
    ]
    return {**activite, "attributsSpecifiques": attributs}
