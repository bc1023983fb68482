"""Relais' producer feed (alimentation v1): producers record usagers, orientations, manquements.

The producer is the source of the data: usagers are designated by their numéro France
Travail in the path, never by a jeton. Only producers hold the scopes, and a producer writes
only for usagers of its organisation's territory unless its client is national
(``client.national``): any other usager is a 403 ``HORS_TERRITOIRE``. Every write goes
through the reference store's domain rules, the same functions ``relais import`` calls. A
refusal answers ``{codeHttp, codeErreur, message}`` and, as for every call, the pipeline
rolls the request's transaction back: nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connexion.lifecycle import ConnexionResponse
from sqlmodel import Session, select

from api.context import RequestState, current_request
from api.errors import erreur_partenaire, json_response, note_refusal
from api.partner.caller import caller_of
from api.refusals import refusal_response
from parcours import (
    alimentation as alimentation_domain,
)
from parcours import (
    orientation as orientation_domain,
)
from parcours import (
    sanctions as sanctions_domain,
)
from parcours.perimeter import caller_organisation
from parcours.ports import Caller, Refused
from parcours.tables import Usager
from relais.core.refusals import RefusalKind
from relais.core.tables import Client

# Every refusal of the feed's rules is about the body or the usager's state: a reference the
# rules do not know (UNKNOWN) is a bad request here, the only 404 being the usager itself.
STATUSES: Mapping[RefusalKind, int] = {RefusalKind.UNKNOWN: 400}
RESULTATS: Mapping[str, str] = {"created": "CREE", "updated": "MODIFIE", "unchanged": "INCHANGE"}

# What an operation does once its usager is found; its refusals become error responses.
Action = Callable[[RequestState, Session, Usager, Caller], ConnexionResponse]


def enregistrer_usager(numeroFranceTravail: str, body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    session = state.session()
    try:
        usager, outcome = alimentation_domain.enregistrer_usager(
            session,
            state.services.keys,
            numeroFranceTravail,
            body,
            now=state.services.clock(),
            producteur=_producteur(session, caller_of(state)),
        )
    except Refused as refused:
        return _refused(refused)
    _audit_usager(state, usager)
    return json_response(
        201 if outcome == "created" else 200,
        {"numeroFranceTravail": usager.numero_france_travail, "resultat": RESULTATS[outcome]},
    )


def enregistrer_inscription(numeroFranceTravail: str, body: dict[str, Any]) -> ConnexionResponse:
    def action(state: RequestState, session: Session, usager: Usager, caller: Caller) -> ConnexionResponse:
        alimentation_domain.enregistrer_inscription(session, usager, body, now=state.services.clock())
        return json_response(200, {"m_contrat": usager.contrat})

    return _for_numero(current_request(), numeroFranceTravail, action)


def enregistrer_cessation(numeroFranceTravail: str, body: dict[str, Any]) -> ConnexionResponse:
    def action(state: RequestState, session: Session, usager: Usager, caller: Caller) -> ConnexionResponse:
        alimentation_domain.enregistrer_cessation(session, usager, body, now=state.services.clock())
        return json_response(200, {"m_contrat": usager.contrat})

    return _for_numero(current_request(), numeroFranceTravail, action)


def preconiser_orientation(numeroFranceTravail: str, body: dict[str, Any]) -> ConnexionResponse:
    def action(state: RequestState, session: Session, usager: Usager, caller: Caller) -> ConnexionResponse:
        orientation = orientation_domain.preconiser(
            session, usager, dict(body), now=state.services.clock(), agent=caller.agent_identifiant
        )
        return json_response(201, orientation_domain.orientation_json(orientation))

    return _for_numero(current_request(), numeroFranceTravail, action)


def ouvrir_manquement(numeroFranceTravail: str, body: dict[str, Any]) -> ConnexionResponse:
    def action(state: RequestState, session: Session, usager: Usager, caller: Caller) -> ConnexionResponse:
        now = state.services.clock()
        results = alimentation_domain.ouvrir_manquement(session, usager, body, now=now, agent=caller.agent_identifiant)
        created = any(outcome == "created" for _, outcome in results)
        consequences = [sanctions_domain.consequence_json(consequence, now=now) for consequence, _ in results]
        return json_response(201 if created else 200, {"consequences": consequences})

    return _for_numero(current_request(), numeroFranceTravail, action)


def _for_numero(state: RequestState, numero: str, action: Action) -> ConnexionResponse:
    """Run ``action`` on the usager ``numero`` (404 if unknown), mapping refusals to errors."""
    session = state.session()
    # Locked: the feed's writes on one usager are serialised (a no-op on SQLite).
    usager = alimentation_domain.usager_par_numero(session, numero, lock=True)
    if usager is None:
        note_refusal("usager_inconnu")
        return erreur_partenaire(
            404,
            "USAGER_INCONNU",
            "Aucun usager n'est enregistré avec ce numéro France Travail : "
            "enregistrez-le d'abord (PUT /usagers/{numeroFranceTravail})",
        )
    _audit_usager(state, usager)
    caller = caller_of(state)
    try:
        alimentation_domain.verifier_territoire(_producteur(session, caller), usager)
        return action(state, session, usager, caller)
    except Refused as refused:
        return _refused(refused)


def _producteur(session: Session, caller: Caller) -> alimentation_domain.Producteur:
    client = session.exec(select(Client).where(Client.client_id == caller.client_id)).first()
    return alimentation_domain.Producteur(
        organisation=caller_organisation(session, caller), national=client is not None and client.national
    )


def _audit_usager(state: RequestState, usager: Usager) -> None:
    state.audit.usager_id = usager.id
    state.audit.usager_nir_index = usager.nir_index


def _refused(refused: Refused) -> ConnexionResponse:
    return refusal_response(refused, statuses=STATUSES)
