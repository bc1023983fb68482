"""Admin API: findings and the yearly review campaigns (domain in ``habilitations.campaigns``).

``campaign_for`` (a campaign with the caller's right on its organisation) is the console's too.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from connexion.lifecycle import ConnexionResponse
from sqlmodel import Session, col, select

from api.admin.habilitations_common import (
    LIRE,
    LOOKUP,
    REVOIR,
    admin_action,
    attempted,
    audit,
    authorize,
    context,
    may,
    organisation_for,
    paginate,
    parse_date,
)
from api.errors import json_response
from habilitations import campaigns
from habilitations.campaign_evidence import findings
from habilitations.campaign_models import CLOTUREE, CampagneElement, CampagneRevue
from habilitations.campaign_reports import person_name
from habilitations.models import Agent, Habilitation
from habilitations.roles import Principal
from habilitations.views import agent_summary, campaign_json, habilitation_json, item_json

CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "tableur": "text/csv; charset=utf-8",
}
# Formats rendered for people from the frozen JSON report (the file's extension).
FOR_PEOPLE = {"pdf": "pdf", "tableur": "csv"}


@admin_action
def lister_anomalies(organisation: str) -> ConnexionResponse:
    state, session, principal, now = context()
    found = organisation_for(session, principal, organisation, LIRE)
    assert found.id is not None
    found_anomalies = findings(session, found.id, now, lookup=LOOKUP)
    audit(state, f"organisation:{found.code}", anomalies=len(found_anomalies))
    return json_response(
        200,
        [
            {"agent": agent_summary(agent), "habilitation": habilitation_json(grant), "preuves": proofs}
            for agent, grant, proofs in found_anomalies
        ],
    )


@admin_action
def lister_campagnes(organisation: str) -> ConnexionResponse:
    state, session, principal, _ = context()
    found = organisation_for(session, principal, organisation, LIRE)
    audit(state, f"organisation:{found.code}")
    rows = session.exec(
        select(CampagneRevue)
        .where(CampagneRevue.organisation_id == found.id)
        .order_by(col(CampagneRevue.ouverte_le).desc())
    ).all()
    return json_response(200, [campaign_json(session, row) for row in rows])


@admin_action
def ouvrir_campagne(organisation: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    found = organisation_for(session, principal, organisation, REVOIR)
    date_limite = parse_date(body["dateLimite"], "dateLimite")
    assert date_limite is not None
    campagne = campaigns.open_campaign(session, principal, found, date_limite, now, lookup=LOOKUP)
    document = campaign_json(session, campagne)
    audit(state, f"campagne:{campagne.id}", date_limite=date_limite.isoformat(), elements=document["elements"])
    return json_response(201, document)


def campaign_for(session: Session, principal: Principal, campagne_id: str, level: str) -> CampagneRevue:
    attempted(f"campagne:{campagne_id}")
    campagne = campaigns.get_campaign(session, campagne_id, lock=level == REVOIR)
    authorize(principal, campagne.organisation_id, level)
    return campagne


def _element_json(session: Session, item: CampagneElement) -> dict[str, Any]:
    agent = session.get(Agent, item.agent_id)
    grant = session.get(Habilitation, item.habilitation_id)
    assert agent is not None and grant is not None
    return {
        **item_json(item),
        "agent": agent_summary(agent),
        "api": grant.api,
        "scopesAccordes": list(grant.scopes),
    }


@admin_action
def consulter_campagne(campagneId: str) -> ConnexionResponse:
    state, session, principal, _ = context()
    campagne = campaign_for(session, principal, campagneId, LIRE)
    audit(state, f"campagne:{campagne.id}")
    return json_response(200, campaign_json(session, campagne))


@admin_action
def lister_elements(campagneId: str, nonDecides: bool = False, page: int = 1, taille: int = 50) -> ConnexionResponse:
    state, session, principal, _ = context()
    campagne = campaign_for(session, principal, campagneId, LIRE)
    audit(state, f"campagne:{campagne.id}", page=page)
    query = select(CampagneElement).where(CampagneElement.campagne_id == campagne.id)
    if nonDecides:
        query = query.where(col(CampagneElement.decision).is_(None))
    order = (col(CampagneElement.agent_id), col(CampagneElement.habilitation_id))
    rows, total = paginate(session, query.order_by(*order), page, taille)
    return json_response(
        200,
        {"resultats": [_element_json(session, item) for item in rows], "page": page, "taille": taille, "total": total},
    )


@admin_action
def decider_element(campagneId: str, elementId: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    campagne = campaign_for(session, principal, campagneId, REVOIR)
    item = campaigns.decide(
        session,
        principal,
        campagne,
        elementId,
        decision=body["decision"],
        commentaire=body.get("commentaire"),
        date_fin=parse_date(body.get("dateFin"), "dateFin"),
        scopes=body.get("scopes"),
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(
        state, f"campagne:{campagne.id}", element=item.id, habilitation_id=item.habilitation_id, decision=item.decision
    )
    return json_response(200, _element_json(session, item))


@admin_action
def decider_elements(campagneId: str, body: dict[str, Any]) -> ConnexionResponse:
    state, session, principal, now = context()
    campagne = campaign_for(session, principal, campagneId, REVOIR)
    date_fin = parse_date(body.get("dateFin"), "dateFin")
    wanted = [
        campaigns.Decision(element_id, body["decision"], body.get("commentaire"), date_fin, body.get("scopes"))
        for element_id in body["elements"]
    ]
    decided = campaigns.decide_many(
        session,
        principal,
        campagne,
        wanted,
        now=now,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    audit(state, f"campagne:{campagne.id}", elements=[item.id for item in decided], decision=body["decision"])
    return json_response(200, [_element_json(session, item) for item in decided])


@admin_action
def cloturer_campagne(campagneId: str) -> ConnexionResponse:
    state, session, principal, now = context()
    campagne = campaign_for(session, principal, campagneId, REVOIR)
    fresh = timedelta(seconds=state.services.settings.fresh_auth_seconds)
    closed = campaigns.close_campaign(
        session,
        principal,
        campagne,
        now=now,
        fresh_auth=fresh,
        recorder=state.services.audit_recorder,
        request_id=state.request_id,
    )
    # The report's hashes go into this request's own audit event, chained with the others.
    audit(
        state,
        f"campagne:{campagne.id}",
        rapport_sha256=closed.hashes,
        remediations_appliquees=closed.applied,
        remediations_en_echec=closed.failed,
    )
    return json_response(
        200,
        {
            "campagne": campaign_json(session, campagne),
            "empreintes": closed.hashes,
            "remediationsAppliquees": closed.applied,
            "remediationsEnEchec": closed.failed,
        },
    )


@admin_action
def telecharger_rapport(campagneId: str, format: str = "json") -> ConnexionResponse:
    state, session, principal, now = context()
    campagne = campaign_for(session, principal, campagneId, LIRE)
    prefix = ""
    if format in FOR_PEOPLE:
        # Closed: rendered from the frozen JSON (whose hash the audit trail holds), the same bytes
        # each time. Open: the draft, marked « Projet », signed by the RGC asking for it.
        draft = campagne.etat != CLOTUREE
        signs = draft and may(principal, campagne.organisation_id, REVOIR)
        signataire = person_name(session, principal.agent_id, principal.label) if signs else None
        content = campaigns.report_for_people(session, campagne, format, signataire=signataire, now=now)
        extension, prefix = FOR_PEOPLE[format], "projet-" if draft else ""
        digest = hashlib.sha256(content).hexdigest()
        audit(state, f"campagne:{campagne.id}", format=format, sha256=digest, projet=draft)
    else:
        stored = campaigns.report(session, campagne, format)
        content, extension, digest = stored.contenu.encode(), format, stored.sha256
        audit(state, f"campagne:{campagne.id}", format=format, sha256=digest)
    return ConnexionResponse(
        status_code=200,
        content_type=CONTENT_TYPES[format],
        mimetype=CONTENT_TYPES[format].split(";")[0],
        body=content,
        headers={
            "X-Relais-Sha256": digest,
            "Content-Disposition": f'attachment; filename="{prefix}revue-{campagne.id}.{extension}"',
        },
    )


@admin_action
def lister_remediations(campagneId: str) -> ConnexionResponse:
    state, session, principal, _ = context()
    campagne = campaign_for(session, principal, campagneId, LIRE)
    audit(state, f"campagne:{campagne.id}")
    return json_response(200, [_element_json(session, item) for item in campaigns.remediations(session, campagne)])
