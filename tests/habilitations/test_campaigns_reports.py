# ruff: noqa: F811
"""Review campaigns for people: optional comments, decisions in bulk, the PDF to sign and the
CSV French Excel opens (through the domain and the admin API, on the real database)."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta

import pytest
from sqlmodel import select

from habilitations import campaigns
from habilitations.campaign_models import CampagneElement, CampagneRevue
from habilitations.refusals import CampaignRefused
from relais.core.french_dates import PARIS
from tests.habilitations.test_admin_api import Staff, error, grant_body, staff  # noqa: F401
from tests.habilitations.test_campaigns import close, decide, elements, open_campaign
from tests.habilitations.world import RECORDER, principal, request_id


def pdf_text(content: bytes) -> str:
    # Uncompressed, core fonts in Windows-1252, parentheses escaped in PDF strings.
    assert content.startswith(b"%PDF-")
    return content.decode("cp1252", errors="replace").replace("\\(", "(").replace("\\)", ")")


def test_a_comment_is_asked_only_to_keep_a_grant_showing_anomalies(staff: Staff) -> None:
    justified = staff.post(staff.rgc33, f"/agents/{staff.agent33}/habilitations", grant_body()).json()
    campagne = open_campaign(staff, staff.rgc33, "CD33")
    items = elements(staff, staff.rgc33, campagne["id"])
    clean = next(item for item in items if item["habilitationId"] == justified["id"])
    flagged = next(item for item in items if item["preuves"]["anomalies"])
    assert clean["preuves"]["anomalies"] == []

    kept = decide(staff, staff.rgc33, campagne["id"], clean["id"], decision="maintenir")
    assert kept.status_code == 200 and kept.json()["commentaire"] is None
    unexplained = decide(staff, staff.rgc33, campagne["id"], flagged["id"], decision="maintenir")
    assert unexplained.status_code == 400 and error(unexplained) == "COMMENTAIRE_OBLIGATOIRE"
    assert "anomalies" in unexplained.json()["message"]
    revoked = decide(staff, staff.rgc33, campagne["id"], flagged["id"], decision="revoquer")
    assert revoked.status_code == 200


def test_a_batch_is_all_or_nothing_and_names_the_line_refused(staff: Staff) -> None:
    hub = staff.hub
    campagne = open_campaign(staff, staff.rgc33, "CD33")
    items = elements(staff, staff.rgc33, campagne["id"])
    recherche = next(item for item in items if item["api"] == "rechercher-usager-v2")
    rgc = principal(hub, staff.rgc33)
    batch = [campaigns.Decision(item["id"], "revoquer") for item in items if item is not recherche]
    # Last of the batch: a reduction that would leave the agent unable to search anyone.
    batch.append(campaigns.Decision(recherche["id"], "reduire", scopes=["rechercheusager"]))
    with hub.services.database.session() as session:
        found = session.get(CampagneRevue, campagne["id"])
        assert found is not None
        with pytest.raises(CampaignRefused) as refused:
            campaigns.decide_many(
                session, rgc, found, batch, now=hub.clock.now, recorder=RECORDER, request_id=request_id()
            )
        session.rollback()
    assert refused.value.code == "REDUCTION_INUTILE"
    identifiant = recherche["agent"]["identifiant"]
    assert refused.value.message.startswith(f"{identifiant} (rechercher-usager-v2) : ")
    assert refused.value.details == {"element": recherche["id"]}
    with hub.services.database.session() as session:
        stored = session.exec(select(CampagneElement).where(CampagneElement.campagne_id == campagne["id"])).all()
        assert all(item.decision is None for item in stored)

    with hub.services.database.transaction() as session:
        found = session.get(CampagneRevue, campagne["id"])
        assert found is not None
        done = campaigns.decide_many(
            session, rgc, found, batch[:-1], now=hub.clock.now, recorder=RECORDER, request_id=request_id()
        )
    assert len(done) == len(items) - 1
    assert [item["id"] for item in elements(staff, staff.rgc33, campagne["id"]) if item["decision"] is None] == [
        recherche["id"]
    ]


def test_the_closed_report_as_pdf_and_tableur_names_people_in_local_time(staff: Staff) -> None:
    hub = staff.hub
    campagne = open_campaign(staff, staff.rgc93, "CD93")
    items = elements(staff, staff.rgc93, campagne["id"])
    # Before closure: the frozen formats do not exist yet, the draft does.
    early = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="csv")
    assert early.status_code == 409 and error(early) == "CAMPAGNE_NON_CLOTUREE"
    draft = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="pdf")
    assert draft.status_code == 200 and 'filename="projet-revue-' in draft.headers["content-disposition"]
    assert "PROJET" in pdf_text(draft.content) and "Prénom Nom RGC-93" in pdf_text(draft.content)
    for item in items:
        decided = decide(staff, staff.rgc93, campagne["id"], item["id"], decision="maintenir", commentaire="Élue ✓")
        assert decided.status_code == 200
    assert close(staff, staff.rgc93, campagne["id"]).status_code == 200
    closed_at = hub.clock.now.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")

    pdf = staff.get(staff.cssi, f"/campagnes/{campagne['id']}/rapport", format="pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="revue-{campagne["id"]}.pdf"'
    assert pdf.headers["x-relais-sha256"] == hashlib.sha256(pdf.content).hexdigest()
    text = pdf_text(pdf.content)
    # People by name (with their accents), never « agent:<id> »; France's local time.
    assert "Prénom Nom RGC-93" in text and "(AGT-0042)" in text
    assert "agent:" not in text and "PROJET" not in text
    assert f"{closed_at} par Prénom Nom RGC-93" in text
    assert "Responsable de gestion des comptes (RGC)" in text and "Signature" in text
    assert "Élue ?" in text  # beyond Windows-1252 (✓) becomes « ? », accents stay
    again = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="pdf")
    assert again.content == pdf.content

    table = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="tableur")
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    assert table.headers["content-disposition"].endswith('.csv"')
    assert table.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the accents right
    rows = list(csv.DictReader(io.StringIO(table.content.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == len(items)
    assert {row["Décision"] for row in rows} == {"Maintenue"}
    assert {row["Décidée par"] for row in rows} == {"Prénom Nom RGC-93"}
    assert {row["Décidée le"] for row in rows} == {closed_at}
    assert {row["Commentaire"] for row in rows} == {"Élue ✓"}

    # The frozen HTML names people too, in local time.
    page = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="html").text
    assert "Prénom Nom RGC-93" in page and closed_at in page and "agent:" not in page

    # The frozen machine formats are unchanged: comma CSV without BOM, ids in the JSON.
    machine = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="csv")
    assert not machine.content.startswith(b"\xef\xbb\xbf") and machine.text.startswith("element,agent_id,")
    document = staff.get(staff.rgc93, f"/campagnes/{campagne['id']}/rapport", format="json").json()
    assert document["campagne"]["clotureePar"] == f"agent:{staff.rgc93}"
    assert document["campagne"]["clotureeParNom"] == "Prénom Nom RGC-93"


def test_the_draft_is_marked_and_follows_the_decisions(staff: Staff) -> None:
    hub = staff.hub
    campagne = open_campaign(staff, staff.rgc93, "CD93")
    first = elements(staff, staff.rgc93, campagne["id"])[0]
    decide(staff, staff.rgc93, campagne["id"], first["id"], decision="revoquer", commentaire="Départ en retraite")
    with hub.services.database.session() as session:
        found = session.get(CampagneRevue, campagne["id"])
        assert found is not None
        later = hub.clock.now + timedelta(hours=1)
        draft = campaigns.report_for_people(session, found, "pdf", signataire="Prénom Nom RGC-93", now=later)
        table = campaigns.report_for_people(session, found, "tableur", signataire=None, now=later)
    text = pdf_text(draft)
    assert "PROJET" in text and "Projet de rapport" in text and "Départ en retraite" in text
    assert "Prénom Nom RGC-93" in text and "À la clôture de la campagne" in text
    rows = list(csv.DictReader(io.StringIO(table.decode("utf-8-sig")), delimiter=";"))
    assert sorted(row["Décision"] for row in rows) == ["Non décidée"] * (len(rows) - 1) + ["Révoquée"]


def test_the_admin_api_decides_a_batch_in_one_call_all_or_nothing(staff: Staff) -> None:
    campagne = open_campaign(staff, staff.rgc33, "CD33")
    items = elements(staff, staff.rgc33, campagne["id"])
    path = f"/campagnes/{campagne['id']}/decisions"
    everything = [item["id"] for item in items]

    useless = staff.post(staff.rgc33, path, {"elements": everything, "decision": "reduire", "scopes": ["x"]})
    assert useless.status_code == 400
    assert staff.post(staff.rssi33, path, {"elements": everything, "decision": "revoquer"}).status_code == 403
    assert all(item["decision"] is None for item in elements(staff, staff.rgc33, campagne["id"]))

    unexplained = staff.post(staff.rgc33, path, {"elements": everything, "decision": "maintenir"})
    assert unexplained.status_code == 400 and error(unexplained) == "COMMENTAIRE_OBLIGATOIRE"
    # The message names the first line refused: its agent's account and its API.
    first = next(item for item in items if item["preuves"]["anomalies"])
    assert unexplained.json()["message"].startswith(f"{first['agent']['identifiant']} ({first['api']}) : ")
    assert all(item["decision"] is None for item in elements(staff, staff.rgc33, campagne["id"]))

    done = staff.post(staff.rgc33, path, {"elements": everything, "decision": "maintenir", "commentaire": "Revu"})
    assert done.status_code == 200, done.text
    assert [item["id"] for item in done.json()] == everything
    assert {item["decision"] for item in elements(staff, staff.rgc33, campagne["id"])} == {"maintenir"}
    assert close(staff, staff.rgc33, campagne["id"]).status_code == 200
