"""The RGC's agent pages: one agent with their grants and what may still be granted, the
creation of an agent, and the reactivation of a suspended or blocked account.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response

from api.admin.habilitations_common import GERER, LIRE, SECURITE, agent_for, audit, authorize, may
from api.console.rgc_forms import agent_url, manages, named_organisation
from api.console.rgc_labels import ETATS, ETATS_COMPTE, STATUTS, api_titles, motif, operation_labels
from api.console.web import ConsoleRefused, Page, form, page, require_form
from api.context import RequestState
from api.refusals import reason_of, status_of
from habilitations import agent_states, agents
from habilitations.models import ACTIF, BLOQUE, REVOQUE, STATUTS_EMPLOI, Agent, Habilitation, Souscription
from habilitations.profiles import api_profiles
from habilitations.roles import Principal
from relais.core.french_dates import local_date
from relais.core.refusals import RefusalKind, Refused

# The fields of the agent creation form (kept when a refusal shows the form again).
AGENT_FORM = ("identifiant", "nom", "prenom", "email", "statut_emploi")


async def agent_page(request: Request) -> Response:
    agent_id = int(request.path_params["agent_id"])
    done = request.query_params.get("fait")
    about = request.query_params.get("habilitation")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        return Page("rgc_agent.html", _agent_context(state, session, principal, agent_id, done, about))

    return await page(request, "console.habilitations.agent", work)


def _agent_context(
    state: RequestState,
    session: Session,
    principal: Principal,
    agent_id: int,
    done: str | None,
    about: str | None = None,
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
    titles = api_titles()
    return {
        "agent": agent,
        "habilitations": held,
        "operations": {grant.id: operation_labels(grant) for grant in held},
        "offres": offers,
        "titres": titles,
        "etats": ETATS,
        "etats_compte": ETATS_COMPTE,
        "statuts": STATUTS,
        "motif": motif,
        "peut_gerer": may(principal, agent.organisation_id, GERER),
        "peut_accorder": manages(principal, agent.organisation_id),
        "peut_securite": may(principal, agent.organisation_id, SECURITE),
        "fait": _confirmation(agent, held, titles, done, about),
        "revoque": REVOQUE,
        "demain": (local_date(state.services.clock()) + timedelta(days=1)).isoformat(),
    }


def _count(grant: Habilitation | None) -> str:
    # The operations actually opened: ticking one may open others needing the same scopes.
    total = len(operation_labels(grant)) if grant is not None else 0
    return f"{total} opération permise" if total == 1 else f"{total} opérations permises"


def _confirmation(agent: Agent, held: Any, titles: dict[str, str], done: str | None, about: str | None) -> str | None:
    """What the last action did, in a sentence naming the agent, the API and the effect."""
    who = f"{agent.prenom} {agent.nom}".strip()
    grant = next((row for row in held if row.id == about), None)
    api = f"« {titles.get(grant.api, grant.api)} »" if grant is not None else "cette API"
    if done == "prolongee" and grant is not None:
        until = f"jusqu'au {grant.date_fin.strftime('%d/%m/%Y')}" if grant.date_fin else "sans date de fin"
        return f"Habilitation {api} prolongée : elle court désormais {until}."
    if done == "raccourcie" and grant is not None and grant.date_fin is not None:
        return f"Habilitation {api} raccourcie : elle prendra fin le {grant.date_fin.strftime('%d/%m/%Y')}."
    messages = {
        "accordee": f"Habilitation accordée : {who} peut désormais appeler {api} "
        f"({_count(grant)}, détaillées ci-dessous).",
        "revoquee": f"Habilitation révoquée : {who} ne peut plus appeler {api}. "
        "Pour la lui rendre, accordez-en une nouvelle.",
        "reactivee": f"Habilitation réactivée : le blocage de sécurité sur {api} est levé.",
        "creee": f"Agent créé : {who}. Il n'a encore aucune habilitation : accordez-lui ci-dessous celles "
        "dont il a besoin.",
        "compte_reactive": f"Compte réactivé : {who} peut de nouveau se connecter et appeler les API "
        "pour lesquelles il est habilité. Le délai d'inactivité repart d'aujourd'hui.",
    }
    return messages.get(done or "")


async def reactivate_agent(request: Request) -> Response:
    """Back to active after an inactivity suspension (the RGC) or a security block (CSSI, operator)."""
    agent_id = int(request.path_params["agent_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        # The admin API's own checks (``changerEtatAgent``): a blocked account is the security officers'.
        agent = agent_for(session, principal, agent_id, GERER)
        if agent.etat == BLOQUE:
            authorize(principal, agent.organisation_id, SECURITE)
        reason = str(data.get("motif", "")).strip() or "reactivation"
        agent_states.reactivate_agent(
            session,
            principal,
            agent_id,
            motif=reason,
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"agent:{agent_id}", action="reactiver", motif=reason, etat=agent.etat)
        return Page(redirect_to=agent_url(agent_id, "compte_reactive"))

    return await page(request, "console.habilitations.compte", work)


async def new_agent_form(request: Request) -> Response:
    code = request.query_params.get("organisation")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        organisation = named_organisation(session, principal, code, GERER)
        audit(state, f"organisation:{organisation.code}")
        return Page("rgc_agent_nouveau.html", {"organisation": organisation, "statuts": STATUTS})

    return await page(request, "console.habilitations.agent_formulaire", work)


async def create_agent(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        organisation = named_organisation(session, principal, data.get("organisation"), GERER)
        assert organisation.id is not None
        values = {name: str(data.get(name, "")).strip() for name in AGENT_FORM}
        email = values["email"] or None
        try:
            # The address binds the account to its ProConnect identity at first login: no typo.
            if email is not None and ("@" not in email or " " in email or len(email) > 254):
                raise ConsoleRefused(RefusalKind.INVALID, "EMAIL_INVALIDE", "Adresse e-mail invalide")
            created = agents.create_agent(
                session,
                principal,
                organisation_id=organisation.id,
                identifiant=values["identifiant"],
                nom=values["nom"],
                prenom=values["prenom"],
                email=email,
                statut_emploi=values["statut_emploi"] if values["statut_emploi"] in STATUTS_EMPLOI else None,
                now=now,
                recorder=state.services.audit_recorder,
                request_id=state.request_id,
            )
        except Refused as refused:
            # The form again with what was typed and why it was refused: nothing to retype.
            # Audited and rolled back like any refusal (``web._run`` does so for a 4xx page).
            state.audit.reason = getattr(refused, "reason", None) or reason_of(refused)
            # Plain values: the refusal rolls the session back, expiring its rows before rendering.
            shown = {"code": organisation.code, "libelle": organisation.libelle}
            context = {"organisation": shown, "statuts": STATUTS, "erreur": refused.message, "valeurs": values}
            return Page("rgc_agent_nouveau.html", context, status=status_of(refused))
        audit(state, f"agent:{created.id}", type=created.type)
        assert created.id is not None
        return Page(redirect_to=agent_url(created.id, "creee"))

    return await page(request, "console.habilitations.agent_creer", work)
