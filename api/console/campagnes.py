"""Campagnes de revue annuelle des habilitations (RGC): liste, décisions groupées, rapports.

The RGC opens the yearly review, decides on several lines at once (or one by one), reads the
draft report, closes, and downloads the signed-to-be PDF and the tableur CSV. Every rule is
``habilitations.campaigns``' (the admin API's domain), every right the admin API's own
(``campaign_for``, ``organisation_for``): the console adds forms, not a second path.

A refused decision or closure is shown on the campaign page itself, the batch undone, so that
the RGC corrects the line named and sends again; a role refusal is the console's refusal page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.admin.habilitations_campagnes import campaign_for
from api.admin.habilitations_common import LIRE, LOOKUP, REVOIR, audit, may, organisation_for
from api.console.web import (
    ConsoleRefused,
    Download,
    Page,
    display_name,
    form,
    page,
    render,
    require_form,
)
from api.context import RequestState
from api.refusals import status_of
from habilitations import campaigns
from habilitations.campaign_models import (
    CLOTUREE,
    ECHUE,
    MAINTENIR,
    MAINTENIR_JUSQU_AU,
    OUVERTE,
    REDUIRE,
    REVOQUER,
    CampagneElement,
    CampagneRevue,
)
from habilitations.campaign_reports import (
    ANOMALIES_LIBELLES,
    DECISIONS_LIBELLES,
    REMEDIATIONS_LIBELLES,
    person_name,
)
from habilitations.models import Agent, Habilitation
from habilitations.profiles import api_profiles
from habilitations.refusals import CampaignRefused
from habilitations.roles import Principal
from relais.core.french_dates import PARIS, local_date
from relais.core.refusals import RefusalKind
from relais.core.tables import Organisation

# The deadline proposed when opening: a month, as most RGCs plan it.
DEFAULT_DAYS = 30
ETATS_CAMPAGNE = {OUVERTE: "En cours", ECHUE: "Date limite dépassée", CLOTUREE: "Clôturée"}
FILTRES_DECISION = {"a_decider": "À décider", "decidees": "Décidées", "toutes": "Toutes"}
# The decisions the bulk form offers, in the order an RGC thinks of them.
CHOIX = {
    MAINTENIR: "Maintenir",
    REDUIRE: "Réduire aux opérations cochées ci-dessous",
    MAINTENIR_JUSQU_AU: "Maintenir jusqu'à une date",
    REVOQUER: "Révoquer",
}
FORMATS = {"pdf": ("pdf", "application/pdf"), "csv": ("tableur", "text/csv; charset=utf-8")}
# How the audit search names this module's pages (merged into the security pages' labels).
OPERATION_LABELS = {
    "console.campagnes.liste": "Console : revues annuelles des habilitations",
    "console.campagnes.ouvrir": "Console : ouvrir une revue annuelle",
    "console.campagnes.campagne": "Console : consulter une revue annuelle",
    "console.campagnes.decider": "Console : décider dans une revue annuelle",
    "console.campagnes.cloturer": "Console : clôturer une revue annuelle",
    "console.campagnes.rapport": "Console : télécharger le rapport d'une revue annuelle",
}
FAIT = {
    "ouverte": "Campagne ouverte : décidez de chaque ligne avant la date limite.",
    "cloturee": "Campagne clôturée : les décisions sont appliquées, le rapport définitif est prêt.",
}


# The list and the opening ------------------------------------------------------------------


async def campaigns_page(request: Request) -> Response:
    code = request.query_params.get("organisation")

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        organisation = organisation_for(session, principal, code or principal.organisation or "", LIRE)
        assert organisation.id is not None
        audit(state, f"organisation:{organisation.code}")
        rows = session.exec(
            select(CampagneRevue)
            .where(CampagneRevue.organisation_id == organisation.id)
            .order_by(col(CampagneRevue.ouverte_le).desc())
        ).all()
        listed = []
        for campagne in rows:
            decided, total = _progress(session, campagne)
            listed.append(
                {
                    "id": campagne.id,
                    "etat": ETATS_CAMPAGNE.get(campagne.etat, campagne.etat),
                    "ouverte_le": _local(campagne.ouverte_le),
                    "ouverte_par": person_name(session, campagne.ouverte_par, campagne.ouverte_par_libelle),
                    "date_limite": campagne.date_limite.strftime("%d/%m/%Y"),
                    "decidees": decided,
                    "total": total,
                }
            )
        in_progress = any(campagne.etat in (OUVERTE, ECHUE) for campagne in rows)
        return Page(
            "campagne_liste.html",
            {
                "organisation": {"code": organisation.code, "libelle": organisation.libelle},
                "campagnes": listed,
                "peut_ouvrir": may(principal, organisation.id, REVOIR) and not in_progress,
                "date_proposee": (local_date(now) + timedelta(days=DEFAULT_DAYS)).isoformat(),
                "choix_organisation": principal.is_cssi or principal.is_operator,
            },
        )

    return await page(request, "console.campagnes.liste", work)


async def open_campaign(request: Request) -> Response:
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        organisation = organisation_for(session, principal, str(data.get("organisation", "")), REVOIR)
        deadline = _date(data.get("date_limite"), "DATE_LIMITE_INVALIDE", "Date limite : une date est attendue")
        assert deadline is not None
        campagne = campaigns.open_campaign(session, principal, organisation, deadline, now, lookup=LOOKUP)
        _, total = _progress(session, campagne)
        audit(state, f"campagne:{campagne.id}", date_limite=deadline.isoformat(), elements=total)
        return Page(redirect_to=f"/console/campagnes/{campagne.id}?fait=ouverte")

    return await page(request, "console.campagnes.ouvrir", work)


# The campaign: filters, progress, decisions, closure ---------------------------------------


async def campaign_page(request: Request) -> Response:
    campagne_id = str(request.path_params["campagne_id"])
    filters = _filters(dict(request.query_params))
    done = FAIT.get(request.query_params.get("fait", ""))
    count = request.query_params.get("decisions", "")
    if count.isdigit():
        done = f"{count} décision(s) enregistrée(s)."

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        campagne = campaign_for(session, principal, campagne_id, LIRE)
        audit(state, f"campagne:{campagne.id}")
        context = _campaign_context(session, principal, campagne, filters, now)
        return Page("campagne.html", {**context, "fait": done, "minutes": _fresh_minutes(state)})

    return await page(request, "console.campagnes.campagne", work)


async def decide(request: Request) -> Response:
    campagne_id = str(request.path_params["campagne_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        filters = _filters({key: str(data.get(f"filtre_{key}", "")) for key in ("etat", "api", "agent")})
        campagne = campaign_for(session, principal, campagne_id, REVOIR)
        try:
            wanted = _decisions(session, campagne, data)
            decided = campaigns.decide_many(
                session,
                principal,
                campagne,
                wanted,
                now=now,
                recorder=state.services.audit_recorder,
                request_id=state.request_id,
            )
        except CampaignRefused as refused:
            return _refused_on_page(state, session, principal, campagne_id, filters, now, refused, data)
        audit(
            state,
            f"campagne:{campagne.id}",
            elements=[item.id for item in decided],
            decision=decided[0].decision if decided else None,
        )
        query = urlencode({**_filter_query(filters), "decisions": len(decided)})
        return Page(redirect_to=f"/console/campagnes/{campagne.id}?{query}")

    return await page(request, "console.campagnes.decider", work)


async def close(request: Request) -> Response:
    campagne_id = str(request.path_params["campagne_id"])
    fields = await form(request)

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        data = require_form(fields)
        campagne = campaign_for(session, principal, campagne_id, REVOIR)
        if data.get("confirmation") != "oui":
            raise ConsoleRefused(
                RefusalKind.INVALID,
                "CONFIRMATION_MANQUANTE",
                "Cochez la case qui confirme avoir relu le projet de rapport avant de clôturer.",
            )
        try:
            closed = campaigns.close_campaign(
                session,
                principal,
                campagne,
                now=now,
                fresh_auth=timedelta(seconds=state.services.settings.fresh_auth_seconds),
                recorder=state.services.audit_recorder,
                request_id=state.request_id,
            )
        except CampaignRefused as refused:
            return _refused_on_page(state, session, principal, campagne_id, _filters({}), now, refused, {})
        # The frozen report's hashes in this request's own event, as the admin API records them.
        audit(
            state,
            f"campagne:{campagne.id}",
            rapport_sha256=closed.hashes,
            remediations_appliquees=closed.applied,
            remediations_en_echec=closed.failed,
        )
        return Page(redirect_to=f"/console/campagnes/{campagne.id}?fait=cloturee")

    return await page(request, "console.campagnes.cloturer", work)


# The reports: PDF to sign and tableur, draft until closure ---------------------------------


async def download(request: Request) -> Response:
    campagne_id = str(request.path_params["campagne_id"])
    extension = str(request.path_params["extension"])
    if extension not in FORMATS:
        return render(
            request, "refus.html", {"principal": None, "code": "PAGE_INCONNUE", "message": "Page inconnue."}, 404
        )
    format_, media_type = FORMATS[extension]

    def work(state: RequestState, session: Session, principal: Principal, now: datetime) -> Page:
        campagne = campaign_for(session, principal, campagne_id, LIRE)
        draft = campagne.etat != CLOTUREE
        # The draft's signature block names the RGC reading it; for a reader who does not sign
        # (RSSI, CSSI), it is left blank.
        signs = may(principal, campagne.organisation_id, REVOIR)
        signataire = display_name(session, principal) if signs else None
        content = campaigns.report_for_people(session, campagne, format_, signataire=signataire, now=now)
        audit(state, f"campagne:{campagne.id}", format=format_, projet=draft)
        name = f"{'projet-' if draft else ''}revue-habilitations-{campagne.id}.{extension}"
        return Page(download=Download(content, media_type, name))

    return await page(request, "console.campagnes.rapport", work)


# Helpers ---------------------------------------------------------------------------------------


def _campaign_context(
    session: Session, principal: Principal, campagne: CampagneRevue, filters: dict[str, str], now: datetime
) -> dict[str, Any]:
    """What the campaign page shows; plain values only (the page renders after the commit)."""
    all_items = campaigns.items(session, campagne)
    agents = {agent.id: agent for agent in _agents(session, [item.agent_id for item in all_items])}
    grants = {grant.id: grant for grant in _grants(session, [item.habilitation_id for item in all_items])}
    profiles = api_profiles()
    lines = []
    for item in all_items:
        agent, grant = agents[item.agent_id], grants[item.habilitation_id]
        if not _kept(item, grant, filters):
            continue
        lines.append(_line(session, item, agent, grant))
    decided = sum(1 for item in all_items if item.decision is not None)
    apis = sorted({grant.api for grant in grants.values()})
    shown_apis = sorted({line["api"] for line in lines})
    # Only APIs whose operations need different scopes can be reduced and still be of use.
    operations = [
        {"api": api, "titre": profiles[api].title, "operations": profiles[api].operations}
        for api in shown_apis
        if api in profiles and len({op.scopes for op in profiles[api].operations}) > 1
    ]
    organisation_id = campagne.organisation_id
    return {
        "campagne": {
            "id": campagne.id,
            "etat": campagne.etat,
            "etat_libelle": ETATS_CAMPAGNE.get(campagne.etat, campagne.etat),
            "date_limite": campagne.date_limite.strftime("%d/%m/%Y"),
            "ouverte_le": _local(campagne.ouverte_le),
            "ouverte_par": person_name(session, campagne.ouverte_par, campagne.ouverte_par_libelle),
            "cloturee_le": _local(campagne.cloturee_le) if campagne.cloturee_le else None,
            "cloturee_par": person_name(session, campagne.cloturee_par, campagne.cloturee_par_libelle),
        },
        "organisation": _organisation(session, campagne),
        "lignes": lines,
        "decidees": decided,
        "total": len(all_items),
        "filtres": filters,
        "filtre_query": urlencode(_filter_query(filters)),
        "filtres_decision": FILTRES_DECISION,
        "apis": apis,
        "agents": sorted(
            ({"id": agent.id, "nom": _agent_name(agent)} for agent in agents.values()), key=lambda a: str(a["nom"])
        ),
        "operations": operations,
        "choix": CHOIX,
        "peut_decider": campagne.etat == OUVERTE and may(principal, organisation_id, REVOIR),
        "peut_cloturer": campagne.etat in (OUVERTE, ECHUE) and may(principal, organisation_id, REVOIR),
        "date_min": (local_date(now) + timedelta(days=1)).isoformat(),
        "erreur": None,
        "coches": [],
        "valeurs": {},
    }


def _organisation(session: Session, campagne: CampagneRevue) -> dict[str, str]:
    organisation = session.get(Organisation, campagne.organisation_id)
    assert organisation is not None
    return {"code": organisation.code, "libelle": organisation.libelle}


def _line(session: Session, item: CampagneElement, agent: Agent, grant: Habilitation) -> dict[str, Any]:
    proofs = item.preuves
    used = [value for value in proofs.get("derniereUtilisationParScope", {}).values() if value]
    decision = DECISIONS_LIBELLES.get(item.decision or "", "")
    if item.decision_date_fin:
        decision += f" {item.decision_date_fin.strftime('%d/%m/%Y')}"
    if item.decision_scopes:
        decision += f" (garde : {', '.join(item.decision_scopes)})"
    return {
        "id": item.id,
        "agent": _agent_name(agent),
        "identifiant": agent.identifiant,
        "api": grant.api,
        "scopes": sorted(grant.scopes),
        "derniere_utilisation": _local_iso(max(used)) if used else "Jamais",
        "anomalies": [ANOMALIES_LIBELLES.get(code, code) for code in proofs.get("anomalies", [])],
        "decidee": item.decision is not None,
        "decision": decision,
        "commentaire": item.commentaire,
        "decidee_par": person_name(session, item.decidee_par, item.decidee_par_libelle),
        "remediation": REMEDIATIONS_LIBELLES.get(item.remediation or "", ""),
    }


def _kept(item: CampagneElement, grant: Habilitation, filters: dict[str, str]) -> bool:
    if filters["etat"] == "a_decider" and item.decision is not None:
        return False
    if filters["etat"] == "decidees" and item.decision is None:
        return False
    if filters["api"] and grant.api != filters["api"]:
        return False
    return not (filters["agent"] and str(item.agent_id) != filters["agent"])


def _filters(values: dict[str, str]) -> dict[str, str]:
    state = values.get("etat", "")
    agent = values.get("agent", "")
    return {
        "etat": state if state in FILTRES_DECISION else "toutes",
        "api": values.get("api", "")[:64],
        "agent": agent if agent.isdigit() else "",
    }


def _filter_query(filters: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in filters.items() if value and value != "toutes"}


def _decisions(session: Session, campagne: CampagneRevue, data: dict[str, Any]) -> list[campaigns.Decision]:
    """The form's decisions: one line's button, or the decision chosen for the ticked lines."""
    commentaire = str(data.get("commentaire", "")).strip() or None
    one = str(data.get("ligne", ""))
    if one:
        element_id, _, decision = one.partition(":")
        return [campaigns.Decision(element_id, decision, commentaire)]
    chosen = data.get("elements", [])
    chosen = [chosen] if isinstance(chosen, str) else list(chosen)
    decision = str(data.get("decision", ""))
    if decision not in CHOIX:
        raise CampaignRefused(
            RefusalKind.INVALID, "DECISION_MANQUANTE", "Choisissez une décision pour les lignes cochées"
        )
    date_fin = None
    if decision == MAINTENIR_JUSQU_AU:
        date_fin = _date(data.get("date_fin"), "DATE_FIN_INVALIDE", "Indiquez jusqu'à quelle date maintenir")
    wanted = []
    for element_id in chosen:
        scopes = None
        if decision == REDUIRE:
            scopes = _kept_scopes(session, campagne, str(element_id), data)
        wanted.append(campaigns.Decision(str(element_id), decision, commentaire, date_fin, scopes))
    return wanted


def _kept_scopes(session: Session, campagne: CampagneRevue, element_id: str, data: dict[str, Any]) -> list[str]:
    """The scopes of the operations ticked for the line's API, among those the grant holds."""
    item = session.get(CampagneElement, element_id)
    if item is None or item.campagne_id != campagne.id:
        return []  # the domain names the unknown line
    grant = session.get(Habilitation, item.habilitation_id)
    assert grant is not None
    profile = api_profiles().get(grant.api)
    ticked = data.get(f"operations-{grant.api}", [])
    ticked = [ticked] if isinstance(ticked, str) else list(ticked)
    needed = set(profile.scopes_for(ticked)) if profile is not None else set()
    return [scope for scope in grant.scopes if scope in needed]


def _refused_on_page(
    state: RequestState,
    session: Session,
    principal: Principal,
    campagne_id: str,
    filters: dict[str, str],
    now: datetime,
    refused: CampaignRefused,
    data: dict[str, Any],
) -> Page:
    """The campaign page again, nothing of the batch kept, saying what to correct."""
    session.rollback()
    state.audit.reason = refused.reason
    campagne = campaigns.get_campaign(session, campagne_id)
    context = _campaign_context(session, principal, campagne, filters, now)
    ticked = data.get("elements", [])
    context.update(
        {
            "minutes": _fresh_minutes(state),
            "erreur": refused.message,
            "coches": [ticked] if isinstance(ticked, str) else list(ticked),
            "valeurs": {key: str(data.get(key, "")) for key in ("decision", "commentaire", "date_fin")},
        }
    )
    return Page("campagne.html", context, status=status_of(refused))


def _fresh_minutes(state: RequestState) -> int:
    return max(int(state.services.settings.fresh_auth_seconds) // 60, 1)


def _date(value: Any, code: str, message: str) -> date | None:
    try:
        return date.fromisoformat(str(value or ""))
    except ValueError:
        raise CampaignRefused(RefusalKind.INVALID, code, message) from None


def _progress(session: Session, campagne: CampagneRevue) -> tuple[int, int]:
    found = campaigns.items(session, campagne)
    return sum(1 for item in found if item.decision is not None), len(found)


def _agents(session: Session, ids: list[int]) -> list[Agent]:
    return list(session.exec(select(Agent).where(col(Agent.id).in_(set(ids) or {0}))).all())


def _grants(session: Session, ids: list[str]) -> list[Habilitation]:
    return list(session.exec(select(Habilitation).where(col(Habilitation.id).in_(set(ids) or {""}))).all())


def _agent_name(agent: Agent) -> str:
    return f"{agent.prenom} {agent.nom}".strip() or agent.identifiant


def _local_iso(value: str) -> str:
    return _local(datetime.fromisoformat(value))


def _local(moment: datetime) -> str:
    # SQLite gives naive datetimes, written in UTC; shown in France's local time.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


# This module's pages, added to the console by ``api.console.routes``.
ROUTES: list[BaseRoute] = [
    Route("/console/campagnes", campaigns_page, methods=["GET"]),
    Route("/console/campagnes", open_campaign, methods=["POST"]),
    Route("/console/campagnes/{campagne_id:str}", campaign_page, methods=["GET"]),
    Route("/console/campagnes/{campagne_id:str}/decisions", decide, methods=["POST"]),
    Route("/console/campagnes/{campagne_id:str}/cloture", close, methods=["POST"]),
    Route("/console/campagnes/{campagne_id:str}/rapport.{extension:str}", download, methods=["GET"]),
]
