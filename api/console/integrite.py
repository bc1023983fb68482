"""La page d'intégrité du journal (RSSI, CSSI): dernier point de contrôle, vérification, clé publique.

Who may open it is the audit API's rule (``visible_organisations``). A verification on demand
recomputes the whole Merkle tree (``audit.verify.verify_database``, as ``relais audit verify``
does), so it is bounded: past ``VERIFY_MAX_LEAVES`` leaves the page says to run the command
instead. Its result is written in the verification's own audit event (counts and the kind of
the first problem, no content), which is where the page reads "the last verification" from:
the journal keeps its own record of being checked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.admin.audit_access import visible_organisations
from api.console.web import ConsoleRefused, Download, Page, form, page, require_form
from api.context import RequestState
from audit import checkpoints
from audit.models import AuditEvent, AuditTreeHead
from audit.verify import verify_database
from habilitations.models import Agent
from habilitations.roles import Principal
from relais.core.french_dates import local_time
from relais.core.refusals import RefusalKind

VERIFY_OPERATION = "console.integrite.verification"
# About a few seconds of work on the 2-core reference machine; beyond, the command line.
VERIFY_MAX_LEAVES = 200_000


async def integrity(request: Request) -> Response:
    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        visible_organisations(session, principal)
        return Page("integrite.html", _context(state, session, result=None))

    return await page(request, "console.integrite", work)


async def verify(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        require_form(fields)
        visible_organisations(session, principal)
        head = session.get(AuditTreeHead, 1)
        if head is not None and head.tree_size > VERIFY_MAX_LEAVES:
            raise ConsoleRefused(
                RefusalKind.INVALID,
                "JOURNAL_TROP_GRAND",
                f"Le journal compte plus de {VERIFY_MAX_LEAVES} entrées : la vérification complète se lance sur "
                "le serveur (relais audit verify) ou hors ligne sur un export.",
            )
        report = verify_database(session, [checkpoints.signing_key(state.services.settings).public_key()])
        first = report.first
        state.audit.details = {
            "resultat": "ok" if report.ok else "ko",
            "feuilles": report.leaves,
            "evenements": report.events,
            "pointsDeControle": report.checkpoints,
            "probleme": first.kind if first is not None else None,
        }
        result = {
            "ok": report.ok,
            "resume": report.summary(),
            "le": local_time(now).strftime("%d/%m/%Y à %H:%M"),
        }
        return Page("integrite.html", _context(state, session, result=result))

    return await page(request, VERIFY_OPERATION, work)


async def public_key(request: Request) -> Response:
    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        visible_organisations(session, principal)
        pem = checkpoints.public_key_pem(state.services.settings)
        return Page(download=Download(pem, "application/x-pem-file", "relais-journal-cle-publique.pem"))

    return await page(request, "console.integrite.cle", work)


# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = [
    Route("/console/integrite", integrity, methods=["GET"]),
    Route("/console/integrite/verification", verify, methods=["POST"]),
    Route("/console/integrite/cle-publique.pem", public_key, methods=["GET"]),
]


def _context(state: RequestState, session: Session, *, result: dict[str, Any] | None) -> dict[str, Any]:
    checkpoint = checkpoints.latest_checkpoint(session)
    head = session.get(AuditTreeHead, 1)
    last = session.exec(
        select(AuditEvent)
        .where(AuditEvent.operation == VERIFY_OPERATION, AuditEvent.decision == "allowed")
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    previous = None
    if last is not None and last.details:
        who = session.get(Agent, last.agent_id) if last.agent_id is not None else None
        previous = {
            "ok": last.details.get("resultat") == "ok",
            "le": local_time(last.occurred_at).strftime("%d/%m/%Y à %H:%M"),
            "feuilles": last.details.get("feuilles"),
            "par": f"{who.prenom} {who.nom}".strip() if who is not None else "un responsable de la sécurité",
        }
    return {
        "point": (
            {
                "le": local_time(checkpoint.issued_at).strftime("%d/%m/%Y à %H:%M"),
                "taille": checkpoint.tree_size,
                "racine": checkpoint.root_hash,
                "cle": checkpoint.key_id,
            }
            if checkpoint is not None
            else None
        ),
        "taille_actuelle": head.tree_size if head is not None else 0,
        "resultat": result,
        "precedente": previous,
        "cle_publique": checkpoints.public_key_pem(state.services.settings),
        "limite": VERIFY_MAX_LEAVES,
    }
