"""La boîte de notifications de la personne connectée (tous les rôles).

Everyone logged in has an inbox: the notifications that reached them (their own inactivity
warnings; as an RGC, their agents' warnings, suspensions and security blocks; as a security
officer, incidents). A person sees and marks only their own copies
(``habilitations.notifications``). Opening the inbox first files what the outbox holds and no
one filed yet, so a notification is there even when no delivery worker runs.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.outbound import notices
from api.console.web import ConsoleRefused, Page, form, page, require_form
from api.context import RequestState
from habilitations import notifications
from habilitations.roles import Principal
from relais.core.outbox import DEAD, DELIVERED, SKIPPED, OutboxMessage
from relais.core.refusals import RefusalKind

# What became of the copy sent outside the console, in plain words.
DELIVERY_STATES = {
    DELIVERED: "Transmise aussi hors de la console (courriel ou logiciel métier).",
    SKIPPED: "Pas d'envoi par courriel : aucune adresse ou aucun envoi configuré.",
    DEAD: "L'envoi par courriel a échoué à plusieurs reprises : il est abandonné.",
}
PENDING_STATE = "Envoi par courriel en attente."


async def inbox_page(request: Request) -> Response:
    done = request.query_params.get("fait")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        agent_id = _agent_of(principal)
        state.audit.target = f"agent:{agent_id}"
        # (``web.page`` filed the outbox's pending notifications first.)
        items = notifications.inbox(session, agent_id)
        sent = _delivery_states(session, [item.message_id for item in items])
        rows = [
            {
                "id": item.id,
                "sujet": item.subject,
                "paragraphes": [part for part in item.body.split("\n\n") if part.strip()],
                "lien": item.link,
                "quand": notices.french_moment(item.created_at),
                "lu": item.read_at is not None,
                "envoi": sent.get(item.message_id, PENDING_STATE),
            }
            for item in items
        ]
        return Page(
            "notifications.html",
            {
                "notifications": rows,
                "fait": "Notification marquée comme lue." if done == "lu" else None,
            },
        )

    return await page(request, "console.notifications.boite", work)


async def mark_read(request: Request) -> Response:
    notification_id = str(request.path_params["notification_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        require_form(fields)
        _agent_of(principal)
        state.audit.target = f"notification:{notification_id}"
        # Someone else's notification is refused as unknown (and audited so).
        notifications.mark_read(session, principal, notification_id, now)
        return Page(redirect_to="/console/notifications?fait=lu")

    return await page(request, "console.notifications.lu", work)


def _agent_of(principal: Principal) -> int:
    if principal.agent_id is None:
        raise ConsoleRefused(RefusalKind.FORBIDDEN, "SANS_BOITE", "Aucune boîte de notifications pour ce compte.")
    return principal.agent_id


def _delivery_states(session: Session, message_ids: list[str]) -> dict[str, str]:
    if not message_ids:
        return {}
    rows = session.exec(
        select(OutboxMessage.id, OutboxMessage.status).where(col(OutboxMessage.id).in_(message_ids))
    ).all()
    return {message_id: DELIVERY_STATES.get(status, PENDING_STATE) for message_id, status in rows}


# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = [
    Route("/console/notifications", inbox_page, methods=["GET"]),
    Route("/console/notifications/{notification_id:str}/lu", mark_read, methods=["POST"]),
]
