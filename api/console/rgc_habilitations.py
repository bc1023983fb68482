"""The RGC's actions on a grant: grant an API by operations, revoke or reactivate, and set or
remove its end date. Each is the admin API's rule (``habilitations.grants``) behind a form.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from api.admin.habilitations_common import GERER, SECURITE, agent_for, audit, habilitation_for
from api.console.rgc_forms import agent_url, form_date
from api.console.web import ConsoleRefused, Page, form, page, require_form
from api.context import RequestState
from habilitations import grants
from habilitations.profiles import api_profiles
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind


async def grant(request: Request) -> Response:
    agent_id = int(request.path_params["agent_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        agent_for(session, principal, agent_id, GERER)
        api = str(data.get("api", ""))
        profile = api_profiles().get(api)
        if profile is None:
            raise ConsoleRefused(RefusalKind.INVALID, "API_INCONNUE", "API inconnue : choisissez une API de la liste")
        # One name per API: axe-core groups same-named checkboxes across the whole page.
        chosen = data.get(f"operations-{api}", [])
        chosen = [chosen] if isinstance(chosen, str) else list(chosen)
        if not profile.scopes_for(chosen):
            raise ConsoleRefused(
                RefusalKind.INVALID,
                "HABILITATION_INUTILE",
                "Aucune opération choisie : l'agent ne pourrait appeler aucune opération de cette API. "
                "Cochez au moins une opération.",
            )
        # The domain refuses a grant that opens no operation, as it does for the admin API.
        created = grants.grant_habilitation(
            session,
            principal,
            agent_id=agent_id,
            api=api,
            scopes=profile.scopes_for(chosen),
            finalite=str(data.get("finalite", "")).strip(),
            justification=str(data.get("justification", "")).strip() or None,
            date_fin=form_date(data.get("date_fin"), required=False),
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"habilitation:{created.id}", agent_id=agent_id, api=created.api)
        return Page(redirect_to=agent_url(agent_id, "accordee", created.id))

    return await page(request, "console.habilitations.accorder", work)


async def change_state(request: Request) -> Response:
    habilitation_id = str(request.path_params["habilitation_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        action = str(data.get("action", ""))
        reason = str(data.get("motif", "")).strip()
        if action not in ("revoquer", "reactiver"):
            raise ConsoleRefused(RefusalKind.INVALID, "ACTION_INCONNUE", "Action inconnue")
        found = habilitation_for(session, principal, habilitation_id, GERER if action == "revoquer" else SECURITE)
        change = grants.revoke_habilitation if action == "revoquer" else grants.reactivate_habilitation
        changed = change(
            session,
            principal,
            habilitation_id,
            motif=reason,
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"habilitation:{changed.id}", action=action, motif=reason, etat=changed.etat)
        done = "revoquee" if action == "revoquer" else "reactivee"
        return Page(redirect_to=agent_url(found.agent_id, done, changed.id))

    return await page(request, "console.habilitations.etat", work)


async def set_end(request: Request) -> Response:
    """Extend (a later date, or none) or shorten a grant: the admin API's ``definirDateFin``."""
    habilitation_id = str(request.path_params["habilitation_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        found = habilitation_for(session, principal, habilitation_id, GERER)
        before = found.date_fin
        wanted = None if data.get("sans_fin") == "1" else form_date(data.get("date_fin"), required=True)
        changed = grants.set_habilitation_end(
            session,
            principal,
            habilitation_id,
            date_fin=wanted,
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"habilitation:{changed.id}", date_fin=wanted.isoformat() if wanted else None)
        extended = wanted is None or (before is not None and wanted > before)
        return Page(redirect_to=agent_url(found.agent_id, "prolongee" if extended else "raccourcie", changed.id))

    return await page(request, "console.habilitations.date_fin", work)
