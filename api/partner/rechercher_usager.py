"""Rechercher usager v2: find an usager by NIR and birth date or by numéro France Travail,
and hand out the ``jetonUsager`` that the per-usager APIs take."""

from __future__ import annotations

from datetime import date
from typing import Any

from connexion.lifecycle import ConnexionResponse

from api.context import RequestState, current_request
from api.errors import R002, R997, json_response, note_refusal, resultat
from api.partner.caller import caller_of
from parcours.ports import Issue, UsagerMatch
from relais.core.jeton import issue_jeton
from relais.core.nir import NirError, is_valid_iso_date, normalize_nir
from relais.core.personal_data import blind_index


def rechercher_usager_par_date_naissance_et_nir(body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    try:
        nir = normalize_nir(body["nir"])
    except NirError as exc:
        return _invalid("nir_invalide", str(exc))
    if not is_valid_iso_date(body["dateNaissance"]):
        return _invalid("date_naissance_invalide", "dateNaissance n'est pas une date AAAA-MM-JJ valide")
    # Recorded even when nobody matches: "who searched for this NIR" is an audit question.
    state.audit.usager_nir_index = blind_index(state.services.keys, nir)
    backend = state.services.backends.rechercher_usager
    match = backend.par_nir(caller_of(state), nir=nir, date_naissance=date.fromisoformat(body["dateNaissance"]))
    return _answer(state, match)


def rechercher_usager_par_numero_france_travail(body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    backend = state.services.backends.rechercher_usager
    match = backend.par_numero_france_travail(caller_of(state), numero=body["numeroFranceTravail"])
    return _answer(state, match)


def _answer(state: RequestState, match: UsagerMatch) -> ConnexionResponse:
    if match.nir_index:
        state.audit.usager_nir_index = match.nir_index
    if match.issue is Issue.NOT_FOUND:
        return json_response(200, _result("S002", "Aucun usager trouvé"))
    if match.issue is Issue.SEVERAL:
        return json_response(200, _result("S003", "Plusieurs usagers trouvés"))
    if match.issue is Issue.NOT_ATTACHED:
        note_refusal("usager_non_rattache")
        return json_response(403, resultat(R002))
    assert match.ref is not None
    state.audit.usager_id = match.ref
    services = state.services
    jeton = issue_jeton(
        services.keys,
        usager_id=match.ref,
        client_id=caller_of(state).client_id,
        now=services.clock(),
        ttl=services.jeton_ttl,
    )
    return json_response(
        200, _result("S001", "Usager trouvé", top="O" if match.identite_certifiee else "N", jeton=jeton)
    )


def _result(code: str, message: str, *, top: str = "null", jeton: str = "null") -> dict[str, str]:
    return {"codeRetour": code, "message": message, "topIdentiteCertifiee": top, "jetonUsager": jeton}


def _invalid(reason: str, detail: str) -> ConnexionResponse:
    note_refusal(reason)
    return json_response(400, resultat(R997, detail))
