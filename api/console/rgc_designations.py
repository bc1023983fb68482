"""The organisation's role designations (RGC titulaire and suppléant, RSSI, intégrateur): the
current and ended ones, designating someone and ending a designation with its reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response

from api.admin.habilitations_common import GERER, LIRE, attempted, audit, authorize, may
from api.console.rgc_forms import form_date, named_organisation
from api.console.rgc_labels import MOTIFS_FIN, ROLES, ROLES_PROPOSES, motif
from api.console.web import ConsoleRefused, Page, form, page, require_form
from api.context import RequestState
from habilitations import designations, lookups
from habilitations.models import ACTIF, HUMAIN, SUPPRIME, TRANSITION_IDENTIFIANT, Agent, Designation
from habilitations.refusals import HabilitationRefused
from habilitations.roles import Principal
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation


async def designations_page(request: Request) -> Response:
    code = request.query_params.get("organisation")
    done = request.query_params.get("fait")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        organisation = named_organisation(session, principal, code, LIRE)
        audit(state, f"organisation:{organisation.code}")
        assert organisation.id is not None
        return Page("rgc_designations.html", _designations_context(session, principal, organisation, now, done))

    return await page(request, "console.habilitations.designations", work)


def _designations_context(
    session: Session, principal: Principal, organisation: Organisation, now: datetime, done: str | None
) -> dict[str, Any]:
    assert organisation.id is not None
    current = sorted(
        lookups.current_designations(session, organisation.id, now),
        key=lambda d: (list(ROLES).index(d.role) if d.role in ROLES else len(ROLES), lookups.utc(d.debut)),
    )
    ended = session.exec(
        select(Designation)
        .where(Designation.organisation_id == organisation.id, col(Designation.fin).is_not(None))
        .order_by(col(Designation.fin).desc())
        .limit(20)
    ).all()
    ended = [d for d in ended if d.fin is not None and lookups.utc(d.fin) <= now]
    people = session.exec(
        select(Agent)
        .where(Agent.organisation_id == organisation.id, Agent.type == HUMAIN, col(Agent.etat) != SUPPRIME)
        .order_by(col(Agent.nom), col(Agent.prenom))
    ).all()
    names = {agent.id: agent for agent in people}
    return {
        "organisation": organisation,
        "en_cours": current,
        "terminees": ended,
        "agents": names,
        "candidats": [a for a in people if a.etat == ACTIF and a.identifiant != TRANSITION_IDENTIFIANT],
        "roles": ROLES,
        "roles_proposes": {key: ROLES[key] for key in ROLES_PROPOSES},
        "motifs_fin": MOTIFS_FIN,
        "motif": motif,
        "peut_gerer": may(principal, organisation.id, GERER),
        "choix_organisation": principal.is_cssi or principal.is_operator,
        "aujourdhui": local_date(now).isoformat(),
        "fait": {
            "designee": "Désignation enregistrée : le rôle prend effet immédiatement.",
            "terminee": "Désignation terminée : la personne n'exerce plus ce rôle. Si un RGC part, change de "
            "fonction ou s'absente, le CSSI de France Travail en est averti.",
        }.get(done or ""),
    }


async def designate(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        organisation = named_organisation(session, principal, data.get("organisation"), GERER)
        assert organisation.id is not None
        try:
            agent_id = int(str(data.get("agent", "")))
        except ValueError:
            raise ConsoleRefused(RefusalKind.INVALID, "AGENT_REQUIS", "Choisissez la personne à désigner") from None
        created = designations.designate(
            session,
            principal,
            organisation_id=organisation.id,
            agent_id=agent_id,
            role=str(data.get("role", "")),
            acte_engagement_le=form_date(data.get("acte_engagement_le"), required=False),
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"designation:{created.id}", role=created.role, agent_id=created.agent_id)
        return Page(redirect_to=f"/console/habilitations/designations?organisation={organisation.code}&fait=designee")

    return await page(request, "console.habilitations.designer", work)


async def end_designation(request: Request) -> Response:
    designation_id = int(request.path_params["designation_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        attempted(f"designation:{designation_id}")
        found = session.get(Designation, designation_id)
        if found is None:
            raise HabilitationRefused(
                RefusalKind.UNKNOWN, "DESIGNATION_INCONNUE", "Aucune désignation ne porte cet identifiant"
            )
        authorize(principal, found.organisation_id, GERER)
        reason = str(data.get("motif", ""))
        if reason not in MOTIFS_FIN:
            raise ConsoleRefused(RefusalKind.INVALID, "MOTIF_REQUIS", "Choisissez le motif de fin dans la liste")
        ended = designations.end_designation(
            session,
            principal,
            designation_id,
            motif=reason,
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"designation:{ended.id}", role=ended.role, motif=reason)
        organisation = lookups.organisation(session, ended.organisation_id)
        return Page(redirect_to=f"/console/habilitations/designations?organisation={organisation.code}&fait=terminee")

    return await page(request, "console.habilitations.terminer_designation", work)
