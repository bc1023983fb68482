"""The security officer's audit search: the usager named in a POST body, never in a URL.

The filters, the visibility (an RSSI sees their organisation, the CSSI every one) and the
audit facts of the search are the audit API's own (``api.admin.audit_recherche``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from api.admin.audit_access import visible_organisations
from api.admin.audit_recherche import _filters as audit_filters
from api.console.web import ConsoleRefused, Page, form, page, require_form
from api.context import RequestState
from audit.search import search
from habilitations.inactivity import PARIS
from habilitations.profiles import operation_labels
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind

PERIODS = {"7": "7 derniers jours", "30": "30 derniers jours", "90": "90 derniers jours"}
LIMIT = 100
DECISIONS = {"allowed": "Autorisé", "denied": "Refusé", "error": "Erreur"}
CONSOLE_LABELS = {
    "console.connexion": "Connexion à la console (persona de démonstration)",
    "console.connexion.debut": "Connexion à la console par ProConnect : départ",
    "console.connexion.proconnect": "Connexion à la console par ProConnect",
    "console.deconnexion": "Déconnexion de la console",
    "console.accueil": "Console : accueil",
    "console.habilitations.tableau": "Console : tableau des habilitations",
    "console.habilitations.agent": "Console : fiche d'un agent",
    "console.habilitations.accorder": "Console : accorder une habilitation",
    "console.habilitations.etat": "Console : révoquer ou réactiver une habilitation",
    "console.audit.formulaire": "Console : formulaire de recherche dans le journal",
    "console.audit.recherche": "Console : recherche dans le journal",
}


async def search_form(request: Request) -> Response:
    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        # The same refusal as the audit API for whoever may not read the journal.
        visible_organisations(session, principal)
        return Page("audit_recherche.html", _context({"periode": "30", "type": "numero"}))

    return await page(request, "console.audit.formulaire", work)


async def search_results(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        period = str(data.get("periode", "30"))
        kind = str(data.get("type", "numero"))
        value = str(data.get("valeur", "")).strip().replace(" ", "")
        if period not in PERIODS:
            raise ConsoleRefused(RefusalKind.INVALID, "PERIODE_INVALIDE", "Période : 7, 30 ou 90 jours")
        body: dict[str, Any] = {"debut": (now - timedelta(days=int(period))).isoformat()}
        if value:
            body["usager"] = {"nir": value} if kind == "nir" else {"numeroFranceTravail": value}
        filters = audit_filters(state, body)
        found = search(session, filters, limit=LIMIT, cursor=None)
        labels = {**operation_labels(), **CONSOLE_LABELS}
        rows = [
            {
                # SQLite gives naive datetimes, written in UTC; shown in France's local time.
                "quand": (
                    event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(tzinfo=UTC)
                ).astimezone(PARIS),
                "operation": labels.get(event.operation, event.operation),
                "organisation": event.organisation,
                "agent": " ".join(part for part in (event.agent_prenom, event.agent_nom) if part)
                or event.agent_identifiant
                or (f"agent {event.agent_id}" if event.agent_id else ""),
                "decision": DECISIONS.get(event.decision, event.decision),
                "refus": event.decision != "allowed",
                "motif": event.reason,
            }
            for event in found.events
        ]
        # The value typed is not sent back: the page keeps no NIR (nor does any URL).
        return Page(
            "audit_recherche.html",
            _context({"periode": period, "type": kind}) | {"resultats": rows, "total": found.total, "limite": LIMIT},
        )

    return await page(request, "console.audit.recherche", work)


def _context(values: dict[str, str]) -> dict[str, Any]:
    return {"periodes": PERIODS, "valeurs": values, "resultats": None}
