"""The RGC's dashboard: the organisation's agents and their grants per subscribed API, the
suspensions due soon, the security blocks, and what needs the RGC's eye (review findings,
accounts and grants that give no access).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response

from api.admin.habilitations_common import LIRE, LOOKUP, audit
from api.console.rgc_forms import manages, named_organisation
from api.console.rgc_labels import ANOMALIES, ETATS, ETATS_COMPTE, api_titles, motif
from api.console.web import Page, page
from api.context import RequestState
from habilitations import lookups
from habilitations.campaign_evidence import findings
from habilitations.inactivity import inactivity_due_date, last_activity
from habilitations.models import (
    ACTIF,
    BLOQUE,
    HUMAIN,
    SUPPRIME,
    TRANSITION_IDENTIFIANT,
    Agent,
    Habilitation,
    Souscription,
)
from habilitations.profiles import is_useless
from habilitations.roles import Principal
from relais.core.french_dates import local_date

# Suspensions due within this many days are listed as upcoming on the dashboard.
UPCOMING_DAYS = 31


async def dashboard(request: Request) -> Response:
    code = request.query_params.get("organisation")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        organisation = named_organisation(session, principal, code, LIRE)
        audit(state, f"organisation:{organisation.code}")
        apis = _subscribed(session, organisation.id)
        people = session.exec(
            select(Agent)
            .where(Agent.organisation_id == organisation.id, col(Agent.etat) != SUPPRIME)
            .order_by(col(Agent.nom), col(Agent.prenom))
        ).all()
        held = _grants(session, [agent.id for agent in people if agent.id is not None])
        today = local_date(now)
        rows: list[dict[str, Any]] = []
        upcoming: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]] = []
        for agent in people:
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
                owner = next(agent for agent in people if agent.id == agent_id)
                title = api_titles().get(api, api)
                blocks.append({"agent": owner, "objet": f"Habilitation « {title} »", "motif": grant.etat_motif})
        upcoming.sort(key=lambda item: str(item["date"]))
        assert organisation.id is not None
        return Page(
            "rgc_tableau.html",
            {
                "organisation": organisation,
                "apis": apis,
                "titres": api_titles(),
                "lignes": rows,
                "suspensions": upcoming,
                "blocages": blocks,
                "anomalies": _anomalies(session, organisation.id, people, held, now),
                "etats": ETATS,
                "etats_compte": ETATS_COMPTE,
                "motif": motif,
                "jours": UPCOMING_DAYS,
                "peut_creer": manages(principal, organisation.id),
                # The CSSI and the operator look at any organisation: they choose which.
                "choix_organisation": principal.is_cssi or principal.is_operator,
            },
        )

    return await page(request, "console.habilitations.tableau", work)


def _anomalies(
    session: Session,
    organisation_id: int,
    people: Any,
    held: dict[tuple[int, str], Habilitation],
    now: datetime,
) -> list[dict[str, Any]]:
    """What needs the RGC's eye: the review campaign's live checks, plus accounts and grants
    that give no access at all (an agent without any grant, a grant that opens no operation)."""
    titles = api_titles()
    found: list[dict[str, Any]] = []
    designated = {d.agent_id for d in lookups.current_designations(session, organisation_id, now)}
    granted = {agent_id for (agent_id, _), grant in held.items() if grant.etat in (ACTIF, BLOQUE)}
    for agent in people:
        # Role holders administer, they do not call APIs: no grant is expected of them.
        if (
            agent.etat == ACTIF
            and agent.type == HUMAIN
            and agent.identifiant != TRANSITION_IDENTIFIANT
            and agent.id not in granted
            and agent.id not in designated
        ):
            found.append(
                {"agent": agent, "objet": "Compte", "constat": "Aucune habilitation : ne peut appeler aucune API"}
            )
    for (_, api), grant in held.items():
        if grant.etat == ACTIF and is_useless(api, grant.scopes):
            owner = next(agent for agent in people if agent.id == grant.agent_id)
            found.append(
                {
                    "agent": owner,
                    "objet": titles.get(api, api),
                    "constat": "Ne permet d'appeler aucune opération : révoquez-la et accordez-la par opérations",
                }
            )
    for agent, grant, proof in findings(session, organisation_id, now, lookup=LOOKUP):
        for code in proof["anomalies"]:
            found.append(
                {
                    "agent": agent,
                    "objet": titles.get(grant.api, grant.api),
                    "constat": ANOMALIES.get(code, code.replace("_", " ").capitalize()),
                }
            )
    return found


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
