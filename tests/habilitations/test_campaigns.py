# ruff: noqa: F811
"""Yearly review campaigns through the real app: evidence, decisions, deadline, closure, report.

Partner calls go through the real enforcement so that the evidence (last use per scope) comes
from the audit trail exactly as in production; the deadline is reached by moving the hub's
injectable clock.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import col, select

from audit.journal import append_event
from audit.models import AuditEvent
from habilitations import agents, campaign_evidence, campaigns, grants, subscriptions
from habilitations.models import Habilitation
from habilitations.roles import Principal
from relais.core.auditing import AuditDraft
from tests.habilitations.test_admin_api import (
    RECHERCHE_API,
    RECHERCHE_GRANT,
    Staff,
    agent_id,
    error,
    events,
    grant_body,
    organisation_id,
    staff,  # noqa: F401
)
from tests.habilitations.world import LOOKUP, RECORDER, request_id
from tests.support.hub import Hub
from tests.support.people import SEINE_SAINT_DENIS
from tests.support.scopes import RECHERCHE, SANCTIONS_SCOPES

SANCTIONS_API = "gestion-sanctions-rsa-v1"
# What reading a manquement needs (« lireDetailSanctionRsa »): a strict part of the full grant.
SANCTIONS_READ = ["api_gestion-sanctions-rsav1", "gestiondesmanquements"]


def open_campaign(staff: Staff, rgc: int, organisation: str, days: int = 30) -> dict[str, Any]:
    deadline = (staff.hub.clock.today() + timedelta(days=days)).isoformat()
    response = staff.post(rgc, f"/organisations/{organisation}/campagnes", {"dateLimite": deadline})
    assert response.status_code == 201, response.text
    return dict(response.json())


def elements(staff: Staff, reader: int, campagne_id: str) -> list[dict[str, Any]]:
    page = staff.get(reader, f"/campagnes/{campagne_id}/elements", taille=200).json()
    assert page["total"] == len(page["resultats"])
    return list(page["resultats"])


def decide(staff: Staff, rgc: int, campagne_id: str, element_id: str, **body: Any) -> httpx.Response:
    return staff.put(rgc, f"/campagnes/{campagne_id}/elements/{element_id}/decision", body)


def grant_state(hub: Hub, habilitation_id: str) -> Habilitation:
    with hub.services.database.session() as session:
        grant = session.get(Habilitation, habilitation_id)
        assert grant is not None
        return grant


def search_93(hub: Hub) -> httpx.Response:
    return hub.client.post(
        f"{RECHERCHE}/par-numero-francetravail",
        json={"numeroFranceTravail": SEINE_SAINT_DENIS.numero},
        headers=hub.headers(hub.token("cd93")),
    )


def close(staff: Staff, rgc: int, campagne_id: str, **token: Any) -> httpx.Response:
    return staff.post(rgc, f"/campagnes/{campagne_id}/cloture", **token)


def test_full_campaign_open_decide_close_with_fresh_login_and_anchored_report(staff: Staff) -> None:
    hub = staff.hub
    # A partner call made for AGT-0042: the evidence of use the RGC will see.
    assert search_93(hub).json()["codeRetour"] == "S001"
    campagne = open_campaign(staff, staff.rgc93, "CD93")
    assert campagne["etat"] == "ouverte" and campagne["elementsNonDecides"] == campagne["elements"] > 1
    assert open_campaign_conflict(staff) == "CAMPAGNE_DEJA_OUVERTE"

    items = elements(staff, staff.rgc93, campagne["id"])
    recherche = next(item for item in items if item["api"] == RECHERCHE_API)
    used = recherche["preuves"]["derniereUtilisationParScope"]
    assert set(used) == set(recherche["scopesAccordes"])
    assert any(value is not None for value in used.values())
    others = [item for item in items if item is not recherche]
    assert all(all(v is None for v in item["preuves"]["derniereUtilisationParScope"].values()) for item in others)
    # Sanctions: reading a manquement needs fewer scopes than deciding on it (a useful reduction).
    sanctions = next(item for item in others if item["api"] == SANCTIONS_API)
    others.remove(sanctions)

    not_yet = close(staff, staff.rgc93, campagne["id"])
    assert not_yet.status_code == 409 and error(not_yet) == "ELEMENTS_NON_DECIDES"

    # Someone else's organisation, or a reader, does not decide.
    assert (
        decide(staff, staff.rgc33, campagne["id"], recherche["id"], decision="maintenir", commentaire="x").status_code
        == 403
    )
    blank = decide(staff, staff.rgc93, campagne["id"], recherche["id"], decision="maintenir", commentaire="   ")
    assert blank.status_code == 400 and error(blank) == "COMMENTAIRE_OBLIGATOIRE"

    # A reduction that leaves no operation callable is refused when decided, not at closure.
    useless = decide(
        staff, staff.rgc93, campagne["id"], recherche["id"], decision="reduire", scopes=["rechercheusager"]
    )
    assert useless.status_code == 400 and error(useless) == "REDUCTION_INUTILE"
    reduce = decide(
        staff,
        staff.rgc93,
        campagne["id"],
        sanctions["id"],
        decision="reduire",
        scopes=SANCTIONS_READ,
        commentaire="Moindre privilège",
    )
    assert reduce.status_code == 200 and reduce.json()["remediation"] == "a_appliquer"
    pending = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/elements", nonDecides="true", taille=1).json()
    assert pending["total"] == len(items) - 1 and len(pending["resultats"]) == 1
    assert pending["resultats"][0]["decision"] is None
    revoked, until, *kept = others
    assert (
        decide(
            staff, staff.rgc93, campagne["id"], revoked["id"], decision="revoquer", commentaire="Plus utile"
        ).status_code
        == 200
    )
    end = (hub.clock.today() + timedelta(days=60)).isoformat()
    assert (
        decide(
            staff,
            staff.rgc93,
            campagne["id"],
            until["id"],
            decision="maintenir_jusqu_au",
            dateFin=end,
            commentaire="Mission",
        ).status_code
        == 200
    )
    for item in [recherche, *kept]:
        assert (
            decide(
                staff, staff.rgc93, campagne["id"], item["id"], decision="maintenir", commentaire="Utile"
            ).status_code
            == 200
        )

    # An old login does not sign a closure: nothing is applied.
    stale = close(staff, staff.rgc93, campagne["id"], auth_time=hub.clock.now - timedelta(hours=1))
    assert stale.status_code == 403 and error(stale) == "AUTHENTIFICATION_RECENTE_REQUISE"
    assert grant_state(hub, revoked["habilitationId"]).etat == "actif"

    closed = close(staff, staff.rgc93, campagne["id"])
    assert closed.status_code == 200, closed.text
    result = closed.json()
    assert result["campagne"]["etat"] == "cloturee"
    assert result["remediationsAppliquees"] == 3 and result["remediationsEnEchec"] == 0

    # The decisions were applied through the lifecycle, each with its own event.
    assert grant_state(hub, revoked["habilitationId"]).etat == "revoque"
    assert sorted(grant_state(hub, sanctions["habilitationId"]).scopes) == SANCTIONS_READ
    assert grant_state(hub, until["habilitationId"]).date_fin.isoformat() == end  # type: ignore[union-attr]
    assert grant_state(hub, kept[0]["habilitationId"]).etat == "actif"
    assert (
        len(events(hub, operation="habilitations.habilitation.revoquer", habilitation_id=revoked["habilitationId"]))
        == 1
    )

    # The report's hashes are in the audit trail and match every download byte for byte.
    (close_event,) = [e for e in events(hub, operation="cloturerCampagne") if e.decision == "allowed"]
    assert close_event.details is not None
    assert close_event.details["rapport_sha256"] == result["empreintes"]
    for format_ in ("json", "csv", "html"):
        download = staff.get(staff.cssi, f"/campagnes/{campagne['id']}/rapport", format=format_)
        assert download.status_code == 200
        digest = hashlib.sha256(download.content).hexdigest()
        assert digest == result["empreintes"][format_] == download.headers["x-relais-sha256"]

    remediations = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/remediations").json()
    assert sorted(r["decision"] for r in remediations) == ["maintenir_jusqu_au", "reduire", "revoquer"]
    assert {r["remediation"] for r in remediations} == {"appliquee"}

    # Closed is closed; the next campaign may open.
    late = decide(staff, staff.rgc93, campagne["id"], kept[0]["id"], decision="revoquer", commentaire="Trop tard")
    assert late.status_code == 409
    assert close(staff, staff.rgc93, campagne["id"]).status_code == 409
    open_campaign(staff, staff.rgc93, "CD93")


def open_campaign_conflict(staff: Staff) -> str:
    deadline = (staff.hub.clock.today() + timedelta(days=10)).isoformat()
    response = staff.post(staff.rgc93, "/organisations/CD93/campagnes", {"dateLimite": deadline})
    assert response.status_code == 409
    return error(response)


def test_only_the_organisation_rgc_runs_its_campaign_others_read_or_nothing(staff: Staff) -> None:
    deadline = (staff.hub.clock.today() + timedelta(days=30)).isoformat()
    for someone in (staff.rssi33, staff.rgc93, staff.cssi, staff.agent33):
        response = staff.post(someone, "/organisations/CD33/campagnes", {"dateLimite": deadline})
        assert response.status_code == 403, someone
    past = staff.post(staff.rgc33, "/organisations/CD33/campagnes", {"dateLimite": "2020-01-01"})
    assert past.status_code == 400 and error(past) == "DATE_LIMITE_INVALIDE"
    campagne = open_campaign(staff, staff.deputy33, "CD33")
    assert staff.get(staff.rssi33, f"/campagnes/{campagne['id']}").status_code == 200
    assert staff.get(staff.cssi, f"/campagnes/{campagne['id']}/elements").status_code == 200
    assert staff.get(staff.rgc93, f"/campagnes/{campagne['id']}").status_code == 403
    assert [c["id"] for c in staff.get(staff.rgc33, "/organisations/CD33/campagnes").json()] == [campagne["id"]]
    report = staff.get(staff.rgc33, f"/campagnes/{campagne['id']}/rapport")
    assert report.status_code == 409 and error(report) == "CAMPAGNE_NON_CLOTUREE"


def test_an_rgc_does_not_keep_their_own_habilitation_a_deputy_decides(staff: Staff) -> None:
    own = staff.post(staff.deputy33, f"/agents/{staff.rgc33}/habilitations", grant_body())
    assert own.status_code == 201
    campagne = open_campaign(staff, staff.rgc33, "CD33")
    item = next(i for i in elements(staff, staff.rgc33, campagne["id"]) if i["habilitationId"] == own.json()["id"])
    refused = decide(staff, staff.rgc33, campagne["id"], item["id"], decision="maintenir", commentaire="Je garde")
    assert refused.status_code == 403 and error(refused) == "AUTO_REVUE_INTERDITE"
    kept = decide(staff, staff.deputy33, campagne["id"], item["id"], decision="maintenir", commentaire="Validé")
    assert kept.status_code == 200 and kept.json()["decideePar"] == f"agent:{staff.deputy33}"


def test_unanswered_items_are_revoked_at_the_deadline_and_the_agent_is_refused_next(staff: Staff) -> None:
    hub = staff.hub
    campagne = open_campaign(staff, staff.rgc93, "CD93", days=1)
    items = elements(staff, staff.rgc93, campagne["id"])
    recherche = next(item for item in items if item["api"] == RECHERCHE_API)
    kept = next(item for item in items if item is not recherche)
    assert (
        decide(staff, staff.rgc93, campagne["id"], kept["id"], decision="maintenir", commentaire="Utile").status_code
        == 200
    )
    assert search_93(hub).json()["codeRetour"] == "S001"

    hub.clock.now += timedelta(days=2)
    # Even before the sweep runs, no decision gets in after the deadline.
    late = decide(staff, staff.rgc93, campagne["id"], recherche["id"], decision="maintenir", commentaire="Oubli")
    assert late.status_code == 409 and error(late) == "CAMPAGNE_NON_OUVERTE"

    with hub.services.database.session() as session:
        assert campaigns.expire_due_campaigns(session, hub.clock.now, recorder=RECORDER, request_id=request_id()) == 1
        session.commit()
    with hub.services.database.session() as session:
        assert campaigns.expire_due_campaigns(session, hub.clock.now, recorder=RECORDER, request_id=request_id()) == 0

    assert grant_state(hub, recherche["habilitationId"]).etat == "revoque"
    assert grant_state(hub, kept["habilitationId"]).etat == "actif"
    (revocation,) = events(
        hub, operation="habilitations.habilitation.revoquer", habilitation_id=recherche["habilitationId"]
    )
    assert revocation.channel == "lifecycle"
    assert revocation.details is not None and revocation.details["motif"] == campaigns.MOTIF_ECHEANCE
    # The agent's very next call on that API is refused.
    assert search_93(hub).status_code == 403

    expired = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}").json()
    assert expired["etat"] == "echue" and expired["elementsNonDecides"] == 0
    closed = close(staff, staff.rgc93, campagne["id"])
    assert closed.status_code == 200, closed.text
    document = json.loads(staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport").content)
    by_grant = {row["habilitation"]["id"]: row for row in document["elements"]}
    assert by_grant[recherche["habilitationId"]]["decision"] == "revoquer"
    assert by_grant[recherche["habilitationId"]]["decideePar"] == campaigns.EXPIRY_ACTOR


def test_report_content_is_escaped_and_complete(staff: Staff) -> None:
    campagne = open_campaign(staff, staff.rgc93, "CD93")
    items = elements(staff, staff.rgc93, campagne["id"])
    hostile = '<script>alert("x")</script> & =HYPERLINK("http://evil")'
    for item in items:
        assert (
            decide(
                staff, staff.rgc93, campagne["id"], item["id"], decision="maintenir", commentaire=hostile
            ).status_code
            == 200
        )
    assert close(staff, staff.rgc93, campagne["id"]).status_code == 200

    page = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="html")
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text and "&amp;" in page.text

    table = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == len(items)
    assert {row["habilitation_id"] for row in rows} == {item["habilitationId"] for item in items}
    assert all(row["decision"] == "maintenir" and row["agent_identifiant"] == "AGT-0042" for row in rows)
    assert all(row["commentaire"] == hostile for row in rows)  # starts with "<": not a formula
    formula = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="json").json()
    assert formula["synthese"] == {
        "elements": len(items),
        "decisions": {"maintenir": len(items)},
        "remediationsEnEchec": 0,
        "anomalies": sum(1 for item in items if item["preuves"]["anomalies"]),
    }
    assert formula["campagne"]["clotureePar"] == f"agent:{staff.rgc93}"


def test_csv_cells_that_would_run_as_formulas_are_neutralised(staff: Staff) -> None:
    campagne = open_campaign(staff, staff.rgc93, "CD93")
    for item in elements(staff, staff.rgc93, campagne["id"]):
        decide(staff, staff.rgc93, campagne["id"], item["id"], decision="maintenir", commentaire="=1+1")
    assert close(staff, staff.rgc93, campagne["id"]).status_code == 200
    table = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="csv")
    assert {row["commentaire"] for row in csv.DictReader(io.StringIO(table.text))} == {"'=1+1"}


def test_findings_flag_inactivity_unused_scopes_subscription_justification_and_overrides(staff: Staff) -> None:
    hub = staff.hub
    operator = Principal.command_line()
    long_ago = hub.clock.now - timedelta(days=100)
    with hub.services.database.session() as session:
        cd33 = organisation_id(session, "CD33")
        idle = agents.create_agent(
            session,
            operator,
            organisation_id=cd33,
            identifiant="AGT-IDLE",
            nom="Idle",
            now=long_ago,
            recorder=RECORDER,
            request_id=request_id(),
        )
        assert idle.id is not None
        grant = grants.grant_habilitation(
            session,
            operator,
            agent_id=idle.id,
            api=RECHERCHE_API,
            scopes=RECHERCHE_GRANT,
            finalite="Instruction",
            now=long_ago,
            recorder=RECORDER,
            request_id=request_id(),
        )
        # The subscription narrowed since: the grant now reaches beyond it.
        subscriptions.set_subscription(
            session,
            operator,
            organisation_id=cd33,
            api=RECHERCHE_API,
            scopes=["api_rechercher-usagerv2", "rechercheusager"],
            now=hub.clock.now,
            recorder=RECORDER,
            request_id=request_id(),
        )
        working = agent_id(session, "CD33", "AGT-7")
        session.commit()
    blocked = staff.post(staff.cssi, f"/agents/{working}/etat", {"action": "bloquer", "motif": "usage_suspect"})
    assert blocked.status_code == 200

    found = staff.get(staff.rssi33, "/organisations/CD33/anomalies")
    assert found.status_code == 200
    by_grant = {finding["habilitation"]["id"]: finding for finding in found.json()}
    flags = by_grant[grant.id]["preuves"]
    assert set(flags["anomalies"]) == {
        campaign_evidence.DEVRAIT_ETRE_SUSPENDU,
        campaign_evidence.SCOPE_INUTILISE_90_JOURS,
        campaign_evidence.HORS_SOUSCRIPTION,
        campaign_evidence.SANS_JUSTIFICATION,
    }
    assert flags["scopesInutilises"] == sorted(RECHERCHE_GRANT)
    assert flags["scopesHorsSouscription"] == ["profil_accedant"]
    overridden = [f for f in found.json() if f["agent"]["id"] == working]
    assert overridden and all(campaign_evidence.BLOCAGE_SECURITE in f["preuves"]["anomalies"] for f in overridden)

    # The campaign carries the same flags as evidence, frozen at opening.
    campagne = open_campaign(staff, staff.rgc33, "CD33")
    item = next(i for i in elements(staff, staff.rgc33, campagne["id"]) if i["habilitationId"] == grant.id)
    assert set(item["preuves"]["anomalies"]) == set(flags["anomalies"])
    assert staff.get(staff.rgc93, "/organisations/CD33/anomalies").status_code == 403


def test_every_campaign_call_is_audited_with_its_target(staff: Staff) -> None:
    campagne = open_campaign(staff, staff.rgc93, "CD93")
    (opened,) = events(staff.hub, operation="ouvrirCampagne")
    assert opened.target == f"campagne:{campagne['id']}" and opened.channel == "admin-api"
    assert opened.details is not None and opened.details["elements"] == campagne["elements"]
    staff.get(staff.rgc33, f"/campagnes/{campagne['id']}")
    (denied,) = events(staff.hub, operation="consulterCampagne")
    assert denied.decision == "denied" and denied.reason == "role:lire"
    with staff.hub.services.database.session() as session:
        assert (
            session.exec(
                select(AuditEvent).where(col(AuditEvent.target).is_(None), AuditEvent.channel == "admin-api")
            ).all()
            == []
        )


def test_last_use_is_per_scope_from_allowed_calls_only(staff: Staff) -> None:
    hub = staff.hub
    grant = staff.post(staff.rgc33, f"/agents/{staff.agent33}/habilitations", grant_body()).json()
    day1, day2, day3 = (hub.clock.now - timedelta(days=n) for n in (30, 20, 10))
    with hub.services.database.session() as session:
        for when, scopes, status in (
            (day1, "rechercheusager profil_accedant", 200),
            (day2, "profil_accedant", 200),
            (day3, "rechercheusager", 403),  # refused: not a use
        ):
            draft = AuditDraft(channel="partner-api", operation="x", habilitation_id=grant["id"], scopes=scopes)
            append_event(session, draft, request_id=f"r-{status}-{when.day}", http_status=status, occurred_at=when)
        session.commit()
        habilitation = session.get(Habilitation, grant["id"])
        assert habilitation is not None
        assert campaign_evidence.last_use_per_scope(session, habilitation, lookup=LOOKUP) == {
            "api_rechercher-usagerv2": None,
            "rechercheusager": day1,
            "profil_accedant": day2,
        }


def test_a_decision_the_rules_refuse_at_closure_stays_visible_as_a_failed_remediation(staff: Staff) -> None:
    grant = staff.post(
        staff.rgc33,
        f"/agents/{staff.agent33}/habilitations",
        grant_body(api=SANCTIONS_API, scopes=SANCTIONS_SCOPES.split()),
    ).json()
    other = staff.post(staff.rgc33, f"/agents/{staff.deputy33}/habilitations", grant_body()).json()
    campagne = open_campaign(staff, staff.rgc33, "CD33")
    for item in elements(staff, staff.rgc33, campagne["id"]):
        if item["habilitationId"] == grant["id"]:
            body: dict[str, Any] = {"decision": "reduire", "scopes": SANCTIONS_READ, "commentaire": "Lecture"}
        elif item["habilitationId"] == other["id"]:
            body = {"decision": "revoquer", "commentaire": "Départ"}
        else:
            body = {"decision": "maintenir", "commentaire": "Utile"}
        assert decide(staff, staff.rgc33, campagne["id"], item["id"], **body).status_code == 200
    # Meanwhile the grant is reduced by hand (nothing left to take away), the other one revoked.
    reduced = staff.post(staff.rgc33, f"/habilitations/{grant['id']}/reduction", {"scopes": SANCTIONS_READ})
    assert reduced.status_code == 200
    revoked = staff.post(staff.rgc33, f"/habilitations/{other['id']}/etat", {"action": "revoquer", "motif": "depart"})
    assert revoked.status_code == 200

    closed = close(staff, staff.rgc33, campagne["id"])
    assert closed.status_code == 200 and closed.json()["remediationsEnEchec"] == 1
    by_grant = {
        r["habilitationId"]: r for r in staff.get(staff.rgc33, f"/campagnes/{campagne['id']}/remediations").json()
    }
    assert (by_grant[grant["id"]]["remediation"], by_grant[grant["id"]]["remediationCode"]) == (
        "en_echec",
        "reduction_invalide",
    )
    assert (by_grant[other["id"]]["remediation"], by_grant[other["id"]]["remediationCode"]) == (
        "sans_objet",
        "habilitation_revoque",
    )
    assert sorted(grant_state(staff.hub, grant["id"]).scopes) == SANCTIONS_READ
