"""Rechercher usager v2: find an usager by NIR and birth date or by numéro France Travail,
and hand out the ``jetonUsager`` that the per-usager APIs take.

The handlers are coroutines: connexion runs them on the event loop, with no hand-off to a
worker thread. On the reference store, when the call has no unit of work open yet (the
security check answered from memory), the search (a read) is done right there: a thread
hand-off costs more CPU than the read itself. The store's statement goes through the
database's event-loop reader (``relais.core.loop_reads``), and its rows decide the match when
the caller's perimeter needs no other row. Otherwise (the France Travail gateway,
which calls out and remembers the upstream jeton, a unit of work already open, a perimeter that
needs more rows, or a reader that could not read) the search runs in one worker thread, which
also ends the call's unit of work there when nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import anyio
from connexion.lifecycle import ConnexionResponse

from adapters.reference_store.store import CandidateQuery, ReferenceStore
from api.context import RequestState, current_request
from api.errors import R002, R997, json_response, note_refusal, resultat
from api.partner.caller import caller_of
from api.pipeline import hold_database_slot
from parcours.ports import Caller, Issue, RechercherUsagerBackend, UsagerMatch
from relais.core.db import wrote
from relais.core.jeton import issue_jeton
from relais.core.nir import NirError, is_valid_iso_date, normalize_nir
from relais.core.personal_data import blind_index


async def rechercher_usager_par_date_naissance_et_nir(body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    try:
        nir = normalize_nir(body["nir"])
    except NirError as exc:
        return _invalid("nir_invalide", str(exc))
    if not is_valid_iso_date(body["dateNaissance"]):
        return _invalid("date_naissance_invalide", "dateNaissance n'est pas une date AAAA-MM-JJ valide")
    # Recorded even when nobody matches: "who searched for this NIR" is an audit question.
    state.audit.usager_nir_index = blind_index(state.services.keys, nir)
    date_naissance = date.fromisoformat(body["dateNaissance"])
    match = await _search(
        state,
        lambda backend, caller: backend.par_nir(caller, nir=nir, date_naissance=date_naissance),
        lambda store: store.statement_par_nir(nir=nir, date_naissance=date_naissance),
    )
    return _answer(state, match)


async def rechercher_usager_par_numero_france_travail(body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    numero = body["numeroFranceTravail"]
    match = await _search(
        state,
        lambda backend, caller: backend.par_numero_france_travail(caller, numero=numero),
        lambda store: store.statement_par_numero_france_travail(numero=numero),
    )
    return _answer(state, match)


Search = Callable[[RechercherUsagerBackend, Caller], UsagerMatch]
# The same search as the reference store's statement, for a read done on the event loop.
Statement = Callable[[ReferenceStore], CandidateQuery]


async def _search(state: RequestState, search: Search, statement: Statement) -> UsagerMatch:
    backend = state.services.backends.rechercher_usager
    caller = caller_of(state)
    if isinstance(backend, ReferenceStore) and not state.has_session:
        reader = state.services.database.loop_reader
        if reader is not None:
            query = statement(backend)
            rows = await reader.rows(query.statement, query.params)
            match = None if rows is None else backend.match_without_session(caller, rows)
            if match is not None:
                return match

    # Listed in api.security.SELF_SLOTTED: the slot may not be held yet.
    await hold_database_slot()

    def in_thread() -> UsagerMatch:
        match = search(backend, caller)
        # A call that read only ends its unit of work here rather than in another hand-off.
        if state.has_session and not wrote(state.session()):
            state.end_session()
        return match

    return await anyio.to_thread.run_sync(in_thread)


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
