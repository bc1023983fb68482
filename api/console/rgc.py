"""The RGC's pages: the organisation's dashboard, agents, grants (by profile, extend, revoke,
reactivate) and the organisation's role designations.

Authorisation and state changes are the admin API handlers' own (``habilitations_common``'s
checks, ``habilitations.grants``): the console is another face of the same rules.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.admin.habilitations_common import (
    GERER,
    LIRE,
    LOOKUP,
    SECURITE,
    agent_for,
    attempted,
    audit,
    authorize,
    habilitation_for,
    may,
    organisation_for,
)
from api.console.web import ConsoleRefused, Page, form, page, require_form
from api.context import RequestState
from api.refusals import reason_of, status_of
from habilitations import agent_states, agents, designations, grants, lookups
from habilitations.campaign_evidence import findings
from habilitations.inactivity import inactivity_due_date, last_activity, local_date
from habilitations.models import (
    ACTIF,
    BLOQUE,
    HUMAIN,
    REVOQUE,
    STATUTS_EMPLOI,
    SUPPRIME,
    TRANSITION_IDENTIFIANT,
    Agent,
    Designation,
    Habilitation,
    Souscription,
)
from habilitations.profiles import api_profiles, is_useless
from habilitations.refusals import HabilitationRefused
from habilitations.roles import Principal
from relais.core.refusals import RefusalKind, Refused
from relais.core.tables import Organisation

# Suspensions due within this many days are listed as upcoming on the dashboard.
UPCOMING_DAYS = 31
ETATS = {
    "actif": "Active",
    "suspendu_inactivite": "Suspendue (inactivité)",
    "bloque": "Bloquée (sécurité)",
    "revoque": "Révoquée",
    "supprime": "Supprimée",
}
# The account's state reads in the masculine ("le compte").
ETATS_COMPTE = {
    "actif": "Actif",
    "suspendu_inactivite": "Suspendu (inactivité)",
    "bloque": "Bloqué (sécurité)",
    "revoque": "Révoqué",
    "supprime": "Supprimé",
}
STATUTS = {
    "fonctionnaire": "Fonctionnaire",
    "contractuel": "Contractuel",
    "prestataire": "Prestataire",
    "interimaire": "Intérimaire",
}
ROLES = {
    "rgc_titulaire": "RGC titulaire",
    "rgc_suppleant": "RGC suppléant",
    "rssi": "RSSI (responsable de la sécurité)",
    "cssi": "CSSI de France Travail",
    "operateur": "Opérateur du hub",
    "integrateur": "Intégrateur",
}
# The fields of the agent creation form (kept when a refusal shows the form again).
AGENT_FORM = ("identifiant", "nom", "prenom", "email", "statut_emploi")
# The roles the designation form offers; the domain still decides who may give which.
ROLES_PROPOSES = ("rgc_suppleant", "rssi", "rgc_titulaire", "integrateur")
MOTIFS_FIN = {
    "depart": "Départ de l'organisation",
    "changement_fonction": "Changement de fonction",
    "absence_prolongee": "Absence de plus de deux mois",
    "fin_de_mission": "Fin de la mission",
}
# What the review campaign's checks find (habilitations.campaign_evidence), in plain words.
ANOMALIES = {
    "DEVRAIT_ETRE_SUSPENDU": "Plus de deux mois sans activité : le compte aurait dû être suspendu",
    "SCOPE_INUTILISE_90_JOURS": "Droits non utilisés depuis 90 jours : sont-ils encore nécessaires ?",
    "HORS_SOUSCRIPTION": "Droits hors de la souscription de l'organisation",
    "SANS_JUSTIFICATION": "Habilitation accordée sans justification",
    "BLOCAGE_SECURITE": "Bloquée par la sécurité depuis la dernière revue",
}
# Reason codes the RGC meets (revocations, blocks, reactivations): shown in words.
MOTIFS = {
    "changement_fonction": "Changement de fonction",
    "depart": "Départ de l'organisation",
    "fin_de_besoin": "Fin du besoin",
    "verification_faite": "Vérification faite",
    "erreur_de_blocage": "Blocage par erreur",
    "usage_suspect": "Usage suspect",
    "incident_securite": "Incident de sécurité",
    "inactivite": "Deux mois sans activité",
    "reactivation": "Réactivation",
    "reprise_activite": "Reprise d'activité",
    **MOTIFS_FIN,
}


def motif(code: str | None) -> str:
    """A reason code in words; an unknown code reads as a phrase rather than as a code."""
    if not code:
        return "—"
    return MOTIFS.get(code) or code.replace("_", " ").replace("-", " ").capitalize()


async def dashboard(request: Request) -> Response:
    code = request.query_params.get("organisation")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        wanted = code or principal.organisation or ""
        organisation = organisation_for(session, principal, wanted, LIRE)
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
                title = _titles().get(api, api)
                blocks.append({"agent": owner, "objet": f"Habilitation « {title} »", "motif": grant.etat_motif})
        upcoming.sort(key=lambda item: str(item["date"]))
        assert organisation.id is not None
        return Page(
            "rgc_tableau.html",
            {
                "organisation": organisation,
                "apis": apis,
                "titres": _titles(),
                "lignes": rows,
                "suspensions": upcoming,
                "blocages": blocks,
                "anomalies": _anomalies(session, organisation.id, people, held, now),
                "etats": ETATS,
                "etats_compte": ETATS_COMPTE,
                "motif": motif,
                "jours": UPCOMING_DAYS,
                "peut_creer": _manages(principal, organisation.id),
                # The CSSI and the operator look at any organisation: they choose which.
                "choix_organisation": principal.is_cssi or principal.is_operator,
            },
        )

    return await page(request, "console.habilitations.tableau", work)


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
    titles = _titles()
    return {
        "agent": agent,
        "habilitations": held,
        "operations": {grant.id: _callable(grant) for grant in held},
        "offres": offers,
        "titres": titles,
        "etats": ETATS,
        "etats_compte": ETATS_COMPTE,
        "statuts": STATUTS,
        "motif": motif,
        "peut_gerer": may(principal, agent.organisation_id, GERER),
        "peut_accorder": _manages(principal, agent.organisation_id),
        "peut_securite": may(principal, agent.organisation_id, SECURITE),
        "fait": _confirmation(agent, held, titles, done, about),
        "revoque": REVOQUE,
        "demain": (local_date(state.services.clock()) + timedelta(days=1)).isoformat(),
    }


def _manages(principal: Principal, organisation_id: int) -> bool:
    """Who the domain lets create agents, grant and extend (``checks.require_manager``): the
    organisation's RGC or the operator, not the CSSI (who may still revoke). A display aid."""
    return principal.is_operator or principal.is_rgc_of(organisation_id)


def _callable(grant: Habilitation) -> list[str]:
    """The operations the grant lets the agent call, by their French labels."""
    profile = api_profiles().get(grant.api)
    return [op.label for op in profile.callable_with(grant.scopes)] if profile is not None else []


def _count(grant: Habilitation | None) -> str:
    # The operations actually opened: ticking one may open others needing the same scopes.
    total = len(_callable(grant)) if grant is not None else 0
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
            date_fin=_date(data.get("date_fin"), required=False),
            now=now,
            recorder=state.services.audit_recorder,
            request_id=state.request_id,
        )
        audit(state, f"habilitation:{created.id}", agent_id=agent_id, api=created.api)
        return Page(redirect_to=_agent_url(agent_id, "accordee", created.id))

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
        return Page(redirect_to=_agent_url(found.agent_id, done, changed.id))

    return await page(request, "console.habilitations.etat", work)


async def set_end(request: Request) -> Response:
    """Extend (a later date, or none) or shorten a grant: the admin API's ``definirDateFin``."""
    habilitation_id = str(request.path_params["habilitation_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        found = habilitation_for(session, principal, habilitation_id, GERER)
        before = found.date_fin
        wanted = None if data.get("sans_fin") == "1" else _date(data.get("date_fin"), required=True)
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
        return Page(redirect_to=_agent_url(found.agent_id, "prolongee" if extended else "raccourcie", changed.id))

    return await page(request, "console.habilitations.date_fin", work)


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
        return Page(redirect_to=_agent_url(agent_id, "compte_reactive"))

    return await page(request, "console.habilitations.compte", work)


async def new_agent_form(request: Request) -> Response:
    code = request.query_params.get("organisation")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        organisation = organisation_for(session, principal, code or principal.organisation or "", GERER)
        audit(state, f"organisation:{organisation.code}")
        return Page("rgc_agent_nouveau.html", {"organisation": organisation, "statuts": STATUTS})

    return await page(request, "console.habilitations.agent_formulaire", work)


async def create_agent(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        code = str(data.get("organisation") or principal.organisation or "")
        organisation = organisation_for(session, principal, code, GERER)
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
        return Page(redirect_to=_agent_url(created.id, "creee"))

    return await page(request, "console.habilitations.agent_creer", work)


async def designations_page(request: Request) -> Response:
    code = request.query_params.get("organisation")
    done = request.query_params.get("fait")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        organisation = organisation_for(session, principal, code or principal.organisation or "", LIRE)
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
        code = str(data.get("organisation") or principal.organisation or "")
        organisation = organisation_for(session, principal, code, GERER)
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
            acte_engagement_le=_date(data.get("acte_engagement_le"), required=False),
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


def _date(value: Any, *, required: bool) -> date | None:
    """A date from a form: the ISO value of a date picker, or JJ/MM/AAAA typed by hand."""
    text = str(value or "").strip()
    if not text:
        if required:
            raise ConsoleRefused(RefusalKind.INVALID, "DATE_REQUISE", "Indiquez une date (JJ/MM/AAAA)")
        return None
    for parse in (date.fromisoformat, lambda raw: datetime.strptime(raw, "%d/%m/%Y").date()):
        try:
            return parse(text)
        except ValueError:
            continue
    raise ConsoleRefused(RefusalKind.INVALID, "DATE_INVALIDE", "Date invalide : JJ/MM/AAAA attendu")


def _agent_url(agent_id: int, done: str, habilitation_id: str | None = None) -> str:
    # Ids and a status word only: no name or other personal data in the address.
    about = f"&habilitation={habilitation_id}" if habilitation_id else ""
    return f"/console/habilitations/agents/{agent_id}?fait={done}{about}"


def _anomalies(
    session: Session,
    organisation_id: int,
    people: Any,
    held: dict[tuple[int, str], Habilitation],
    now: datetime,
) -> list[dict[str, Any]]:
    """What needs the RGC's eye: the review campaign's live checks, plus accounts and grants
    that give no access at all (an agent without any grant, a grant that opens no operation)."""
    titles = _titles()
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


ROUTES = [
    Route("/console/habilitations/agents/nouveau", new_agent_form, methods=["GET"]),
    Route("/console/habilitations/agents/nouveau", create_agent, methods=["POST"]),
    Route("/console/habilitations/agents/{agent_id:int}/reactiver", reactivate_agent, methods=["POST"]),
    Route("/console/habilitations/designations", designations_page, methods=["GET"]),
    Route("/console/habilitations/designations", designate, methods=["POST"]),
    Route("/console/habilitations/designations/{designation_id:int}/fin", end_designation, methods=["POST"]),
    Route("/console/habilitations/{habilitation_id:str}/date-fin", set_end, methods=["POST"]),
]


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
