"""The flow shared by every per-usager call: open the ``ft-jeton-usager``, act, answer.

A jeton that is missing, malformed, tampered with, expired or issued to another client
never yields data: the caller gets 401 (redo Rechercher usager) or 403, and the refusal
is audited with its reason. A call the domain rules refuse (``Refused``) changes nothing:
the pipeline rolls the request's transaction back on any answer of 400 or more.
"""

from __future__ import annotations

from collections.abc import Callable

from connexion import request
from connexion.lifecycle import ConnexionResponse

from api.context import RequestState
from api.errors import erreur_partenaire, jeton_refused, json_response, note_refusal
from api.partner.caller import caller_of
from api.refusals import refusal_response
from parcours.ports import Caller, Refused, UsagerData, UsagerNotAttached
from relais.core.jeton import JETON_HEADER, JetonAutreClient, JetonError, JetonExpire, open_jeton

Action = Callable[[Caller, str], UsagerData]
# A client that asks for Relais' additions to FT's answers (README, "Relais additions to the
# partner APIs"); without it an answer has FT's shape only, which FT's typed client requires.
DETAILS_HEADER = "x-relais-details"
_OPT_IN = ("oui", "true", "1")
# Answers a domain refusal in the called API's error format (see api.refusals).
RefusalRenderer = Callable[[Refused], ConnexionResponse]


def details_requested() -> bool:
    """Whether the request opted in to Relais' additions (``X-Relais-Details: oui``)."""
    return request.headers.get(DETAILS_HEADER, "").strip().lower() in _OPT_IN


def for_usager(
    state: RequestState,
    action: Action,
    *,
    status: int = 200,
    render_refusal: RefusalRenderer = refusal_response,
) -> ConnexionResponse:
    """Run ``action`` for the usager of the request's jeton; answer ``status`` with its payload.

    A payload of None answers 204 (nothing to return).
    """
    caller = caller_of(state)
    token = request.headers.get(JETON_HEADER, "")
    if not token:
        return jeton_refused("jeton_missing", 401, "JETON_USAGER_ABSENT", "En-tête ft-jeton-usager absent")
    try:
        ref = open_jeton(state.services.keys, token, client_id=caller.client_id, now=state.services.clock())
    except JetonAutreClient:
        return jeton_refused(
            "jeton_autre_client", 403, "JETON_USAGER_NON_AUTORISE", "Ce jeton usager a été émis pour un autre client"
        )
    except JetonExpire:
        return jeton_refused(
            "jeton_expire", 401, "JETON_USAGER_EXPIRE", "Jeton usager expiré : refaites la recherche usager"
        )
    except JetonError:
        return jeton_refused("jeton_invalide", 401, "JETON_USAGER_INVALIDE", "Jeton usager invalide")
    state.audit.usager_id = ref
    try:
        data = action(caller, ref)
    except UsagerNotAttached:
        note_refusal("usager_non_rattache")
        return erreur_partenaire(403, "USAGER_NON_RATTACHE", "L'usager n'est pas rattaché à la structure de l'accédant")
    except Refused as refused:
        return render_refusal(refused)
    state.audit.usager_nir_index = data.nir_index
    if data.payload is None:
        return ConnexionResponse(status_code=204)
    return json_response(status, data.payload)
