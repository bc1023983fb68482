"""Audit v1: search and export the journal, and the « qui a consulté mon dossier » report.

Every call is audited by the request pipeline like any admin call; the handlers add what the
event must say: the NAMES of the filters used (``details``), never their values, and, when
searching by usager, the usager's internal id as ``target`` — never the NIR.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import Any, TypeVar

from connexion.lifecycle import ConnexionResponse
from starlette.responses import StreamingResponse

from api.admin.audit_access import check_organisation, current_visibility, parse_moment, refused_answer
from api.admin.audit_usager import resolve_usager
from api.context import RequestState, current_request
from api.errors import json_response
from audit import report as report_module
from audit.refusals import AuditRefused, RefusalKind
from audit.search import Filters, UsagerCible, csv_lines, event_json, iter_events, jsonl_records, search
from relais.core.nir import NirError

T = TypeVar("T")
CSV_MEDIA_TYPE = "text/csv"
JSONL_MEDIA_TYPE = "application/jsonl"


def rechercher_evenements(body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    try:
        filters = _filters(state, body)
        limit = min(int(body.get("limite", 100)), state.services.settings.audit_search_max_page)
        page = search(state.session(), filters, limit=limit, cursor=body.get("curseur"))
    except AuditRefused as refused:
        return refused_answer(refused)
    return json_response(
        200,
        {
            "total": page.total,
            "evenements": [event_json(event) for event in page.events],
            "curseurSuivant": page.next_cursor,
        },
    )


def exporter_evenements(body: dict[str, Any]) -> ConnexionResponse | StreamingResponse:
    state = current_request()
    try:
        filters = _filters(state, body)
    except AuditRefused as refused:
        return refused_answer(refused)
    fmt = body["format"]
    assert state.audit.details is not None
    state.audit.details["format"] = fmt
    session = state.session()
    if fmt == "csv":
        return StreamingResponse(
            csv_lines(_started(iter_events(session, filters))),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="journal-audit.csv"'},
        )
    records = jsonl_records(session, filters, settings=state.services.settings, now=state.services.clock())
    return StreamingResponse(
        _started(json.dumps(record, ensure_ascii=False) + "\n" for record in records),
        media_type=JSONL_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="journal-audit.jsonl"'},
    )


def rapport_acces_usager(body: dict[str, Any]) -> ConnexionResponse:
    state = current_request()
    try:
        filters = _filters(state, body)
    except AuditRefused as refused:
        return refused_answer(refused)
    assert filters.usager is not None
    result = report_module.who_accessed(state.session(), filters)
    # Whether the hub knows this person is itself sensitive (an RSA beneficiary...): only the
    # CSSI, who sees every organisation, learns it; others learn only what their events show.
    known = bool(filters.usager.usager_ids) if filters.visible is None else result.total > 0
    return json_response(
        200,
        {
            "usagerConnu": known,
            "periode": {"debut": body.get("debut"), "fin": body.get("fin")},
            "total": result.total,
            "tronque": result.truncated,
            "acces": result.accesses,
            "organisations": result.organisations,
        },
    )


def _started(chunks: Iterator[T]) -> Iterator[T]:
    """``chunks`` with its first one already produced, here, before the status line.

    Whatever fails in the first query then fails the handler (an error answer, audited as
    such) instead of cutting a stream whose 200 and audit event have already gone out.
    """
    first = next(chunks, None)
    return chain([first] if first is not None else [], chunks)


# Filters ----------------------------------------------------------------------------------


def _filters(state: RequestState, body: dict[str, Any]) -> Filters:
    """The body's filters, with the caller's visibility; records their names in the audit event."""
    session = state.session()
    principal, visible = current_visibility(session)
    check_organisation(visible, body.get("organisation"))
    usager = _usager(state, body.get("usager"))
    try:
        debut, fin = _utc(parse_moment(body.get("debut"))), _utc(parse_moment(body.get("fin")))
    except ValueError:
        raise _invalid("PERIODE_INVALIDE", "debut ou fin n'est pas une date-heure ISO 8601") from None
    except OverflowError:
        # 0001-01-01T00:00:00+05:00 or 9999-12-31T23:59:59-05:00: valid ISO 8601, no UTC instant.
        raise _invalid("PERIODE_INVALIDE", "debut ou fin hors des dates représentables") from None
    if debut is not None and fin is not None and debut >= fin:
        raise _invalid("PERIODE_INVALIDE", "debut doit précéder fin")
    filters = Filters(
        usager=usager,
        agent_id=body.get("agentId"),
        agent_identifiant=body.get("agentIdentifiant"),
        organisation=body.get("organisation"),
        client_id=body.get("clientId"),
        operation=body.get("operation"),
        decision=body.get("decision"),
        debut=debut,
        fin=fin,
        visible=visible,
    )
    state.audit.details = {"filtres": filters.names()}
    if usager is not None and usager.reference is not None:
        state.audit.target = usager.reference
    return filters


def _utc(moment: datetime | None) -> datetime | None:
    """The same instant in UTC, as the journal stores it; OverflowError past year 1 or 9999."""
    return moment.astimezone(UTC) if moment is not None else None


def _usager(state: RequestState, given: dict[str, Any] | None) -> UsagerCible | None:
    if given is None:
        return None
    nir, numero = given.get("nir"), given.get("numeroFranceTravail")
    if (nir is None) == (numero is None):
        raise _invalid("USAGER_ABSENT", "usager : donner soit nir, soit numeroFranceTravail")
    try:
        return resolve_usager(state.session(), state.services.keys, nir=nir, numero=numero)
    except NirError as exc:
        # The message names the problem, never the value.
        raise _invalid("NIR_INVALIDE", str(exc)) from None


def _invalid(code: str, message: str) -> AuditRefused:
    return AuditRefused(RefusalKind.INVALID, code, message)
