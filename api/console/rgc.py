"""The RGC's pages: the organisation's dashboard, an agent's grants, grant by profile, revoke.

Authorisation and state changes are the admin API handlers' own (``habilitations_common``'s
checks, ``habilitations.grants``): the console is another face of the same rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response

from api.admin.habilitations_common import (
    GERER,
    LIRE,
    SECURITE,
    agent_for,
    audit,
    habilitation_for,
    may,
    organisation_for,
)
from api.console.web import ConsoleRefused, Page, form, page, require_form
from api.context import RequestState
from habilitations import grants
from habilitations.inactivity import inactivity_due_date, last_activity, local_date
from habilitations.models import ACTIF, BLOQUE, REVOQUE, SUPPRIME, Agent, Habilitation, Souscription
from habilitations.profiles import api_profiles
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind

# Suspensions due within this many days are listed as upcoming on the dashboard.
UPCOMING_DAYS = 31
ETATS = {
    "actif": "Active",
    "suspendu_inactivite": "Suspendue (inactivité)",
    "bloque": "Bloquée (sécurité)",
    "revoque": "Révoquée",
    "supprime": "Supprimée",
}


async def dashboard(request: Request) -> Response:
    code = request.query_params.get("organisation")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        wanted = code or principal.organisation or ""
        organisation = organisation_for(session, principal, wanted, LIRE)
        audit(state, f"organisation:{organisation.code}")
        apis = _subscribed(session, organisation.id)
        agents = session.exec(
            select(Agent)
            .where(Agent.organisation_id == organisation.id, col(Agent.etat) != SUPPRIME)
            .order_by(col(Agent.nom), col(Agent.prenom))
        ).all()
        held = _grants(session, [agent.id for agent in agents if agent.id is not None])
        today = local_date(now)
        rows: list[dict[str, Any]] = []
        upcoming: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]] = []
        for agent in agents:
            cells = {api: held.get((agent.id or 0, api)) for api in apis}
            rows.append({"agent": agent, "cells": cells})
            if agent.etat == ACTIF and agent.type == "humain":
                due = inactivity_due_date(agent)
                if due <= today + timedelta(days=UPCOMING_DAYS):
                    upcoming.append({"agent": agent, "date": due, "depuis": local_date(last_activity(agent))})
            if agent.etat == BLOQUE:
                blocks.append({"agent": agent, "objet": "Compte", "motif": agent.etat_motif})
        for (agent_id, api), grant in held.items():
            if grant.etat == BLOQUE:
                owner = next(agent for agent in agents if agent.id == agent_id)
                blocks.append({"agent": owner, "objet": f"Habilitation {api}", "motif": grant.etat_motif})
        upcoming.sort(key=lambda item: str(item["date"]))
        return Page(
            "rgc_tableau.html",
            {
                "organisation": organisation,
                "apis": apis,
                "titres": _titles(),
                "lignes": rows,
                "suspensions": upcoming,
                "blocages": blocks,
                "etats": ETATS,
                "jours": UPCOMING_DAYS,
                # The CSSI and the operator look at any organisation: they choose which.
                "choix_organisation": principal.is_cssi or principal.is_operator,
            },
        )

    return await page(request, "console.habilitations.tableau", work)


async def agent_page(request: Request) -> Response:
    agent_id = int(request.path_params["agent_id"])
    done = request.query_params.get("fait")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        return Page("rgc_agent.html", _agent_context(state, session, principal, agent_id, done))

    return await page(request, "console.habilitations.agent", work)


def _agent_context(
    state: RequestState, session: Session, principal: Principal, agent_id: int, done: str | None
) -> dict[str, Any]:
    agent = agent_for(session, principal, agent_id, LIRE)
    audit(state, f"agent:{agent_id}")
    held = session.exec(
        select(Habilitation).where(Habilitation.agent_id == agent_id).order_by(col(Habilitation.accordee_le).desc())
    ).all()
    current = {grant.api for grant in held if grant.etat in (ACTIF, BLOQUE)}
    subscriptions = session.exec(
        select(Souscription).where(Souscription.organisation_id == agent.organisation_id)
    ).all()
    profiles = api_profiles()
    offers = []
    for subscription in sorted(subscriptions, key=lambda item: item.api):
        profile = profiles.get(subscription.api)
        if profile is None or subscription.api in current:
            continue
        allowed = set(subscription.scopes)
        operations = [op for op in profile.operations if op.scopes <= allowed]
        if operations:
            offers.append({"profil": profile, "operations": operations})
    return {
        "agent": agent,
        "habilitations": held,
        "offres": offers,
        "etats": ETATS,
        "peut_gerer": may(principal, agent.organisation_id, GERER),
        "peut_securite": may(principal, agent.organisation_id, SECURITE),
        "fait": {
            "accordee": "Habilitation accordée.",
            "revoquee": "Habilitation révoquée.",
            "reactivee": "Habilitation réactivée.",
        }.get(done or ""),
        "revoque": REVOQUE,
    }


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
        created = grants.grant_habilitation(
            session,
            principal,
            agent_id=agent_id,
            api=api,
            scopes=profile.scopes_for(chosen),
            finalite=str(data.get("finalite", "")).strip(),
            justification=str(data.get("justification", "")).strip() or None,
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
            require_useful=True,
        )
        audit(state, f"habilitation:{created.id}", agent_id=agent_id, api=created.api)
        return Page(redirect_to=f"/console/habilitations/agents/{agent_id}?fait=accordee")

    return await page(request, "console.habilitations.accorder", work)


async def change_state(request: Request) -> Response:
    habilitation_id = str(request.path_params["habilitation_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        action = str(data.get("action", ""))
        motif = str(data.get("motif", "")).strip()
        if action not in ("revoquer", "reactiver"):
            raise ConsoleRefused(RefusalKind.INVALID, "ACTION_INCONNUE", "Action inconnue")
        found = habilitation_for(session, principal, habilitation_id, GERER if action == "revoquer" else SECURITE)
        change = grants.revoke_habilitation if action == "revoquer" else grants.reactivate_habilitation
        changed = change(
            session,
            principal,
            habilitation_id,
            motif=motif,
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"habilitation:{changed.id}", action=action, motif=motif, etat=changed.etat)
        done = "revoquee" if action == "revoquer" else "reactivee"
        return Page(redirect_to=f"/console/habilitations/agents/{found.agent_id}?fait={done}")

    return await page(request, "console.habilitations.etat", work)


def _subscribed(session: Session, organisation_id: int | None) -> list[str]:
    rows = session.exec(select(Souscription.api).where(Souscription.organisation_id == organisation_id)).all()
    return sorted(rows)


def _grants(session: Session, agent_ids: list[int]) -> dict[tuple[int, str], Habilitation]:
    """The most telling grant per agent and API: active or blocked first, else the latest."""
    found: dict[tuple[int, str], Habilitation] = {}
    if not agent_ids:
        return found
    rows = session.exec(
        select(Habilitation).where(col(Habilitation.agent_id).in_(agent_ids)).order_by(col(Habilitation.accordee_le))
    ).all()
    for grant_row in rows:
        key = (grant_row.agent_id, grant_row.api)
        kept = found.get(key)
        if kept is None or kept.etat not in (ACTIF, BLOQUE) or grant_row.etat in (ACTIF, BLOQUE):
            found[key] = grant_row
    return found


def _titles() -> dict[str, str]:
    return {api: profile.title for api, profile in api_profiles().items()}
