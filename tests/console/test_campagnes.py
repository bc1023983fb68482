"""The review campaign in the console over HTTP: open, bulk and one-line decisions, draft and
final reports, closure, and the admin API's roles both ways.

Through the real app and database, as a browser posts its forms.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlmodel import col, select

from api.console.campagnes import OPERATION_LABELS
from audit.models import AuditEvent
from habilitations.campaign_models import CampagneElement
from habilitations.models import Habilitation
from relais.core.french_dates import PARIS
from tests.console.test_console import agent_named, login
from tests.habilitations.world import grant
from tests.support.hub import Hub

LINE = re.compile(r'name="elements" value="([0-9a-f]+)"')


def open_review(console: Hub, csrf: str) -> str:
    """Open CD33's review through the console; the campaign page's address."""
    deadline = (console.clock.today() + timedelta(days=30)).isoformat()
    opened = console.client.post(
        "/console/campagnes", data={"csrf": csrf, "organisation": "CD33", "date_limite": deadline}
    )
    assert opened.status_code == 200, opened.text
    assert "Campagne ouverte" in opened.text
    return str(opened.url.path)


def lines(console: Hub, campaign: str) -> list[str]:
    return LINE.findall(console.client.get(campaign).text)


def items_of(console: Hub, campaign: str) -> list[CampagneElement]:
    campagne_id = campaign.rsplit("/", 1)[1]
    with console.services.database.session() as session:
        return list(session.exec(select(CampagneElement).where(CampagneElement.campagne_id == campagne_id)).all())


def pdf_text(response: httpx.Response) -> str:
    # The PDF is uncompressed and its core fonts speak Windows-1252: names are in its bytes
    # (in PDF strings, where parentheses are escaped).
    assert response.content.startswith(b"%PDF-")
    return response.content.decode("cp1252", errors="replace").replace("\\(", "(").replace("\\)", ")")


def test_the_rgc_decides_in_bulk_reads_the_draft_closes_and_downloads_both_reports(console: Hub) -> None:
    csrf = login(console, "rgc-cd33")
    listing = console.client.get("/console/campagnes")
    assert listing.status_code == 200 and "Aucune revue" in listing.text and "Ouvrir la revue" in listing.text
    campaign = open_review(console, csrf)
    page = console.client.get(campaign)
    every = LINE.findall(page.text)
    assert len(every) > 3 and f"Avancement : 0 décidée(s) sur {len(every)}" in page.text
    assert "Agent AGT-7" in page.text  # agents by name, not by number

    # The dataset's grants have no justification (an anomaly): keeping them takes a comment.
    refused = console.client.post(
        f"{campaign}/decisions", data={"csrf": csrf, "elements": every[:-1], "decision": "maintenir"}
    )
    assert refused.status_code == 400 and "dites en commentaire pourquoi" in refused.text
    assert "Rien n'a été enregistré" in refused.text and "Avancement : 0 décidée(s)" in refused.text
    assert all(item.decision is None for item in items_of(console, campaign))

    # One form for all lines but one: one decision, one comment.
    bulk = console.client.post(
        f"{campaign}/decisions",
        data={"csrf": csrf, "elements": every[:-1], "decision": "maintenir", "commentaire": "Toujours en poste"},
    )
    assert bulk.status_code == 200 and f"{len(every) - 1} décision(s) enregistrée(s)" in bulk.text
    assert f"Avancement : {len(every) - 1} décidée(s) sur {len(every)}" in bulk.text
    # The last line by its own button, no comment needed to revoke.
    last = every[-1]
    one = console.client.post(f"{campaign}/decisions", data={"csrf": csrf, "ligne": f"{last}:revoquer"})
    assert one.status_code == 200 and "1 décision(s) enregistrée(s)" in one.text
    decided = {item.id: item for item in items_of(console, campaign)}
    assert decided[last].decision == "revoquer" and decided[last].commentaire is None
    assert {decided[item].decision for item in every[:-1]} == {"maintenir"}
    assert decided[every[0]].commentaire == "Toujours en poste"

    # The draft: same report, marked « Projet », signed by whoever reads it.
    draft = console.client.get(f"{campaign}/rapport.pdf")
    assert draft.status_code == 200 and draft.headers["content-type"] == "application/pdf"
    assert draft.headers["content-disposition"].startswith('attachment; filename="projet-revue-habilitations-')
    text = pdf_text(draft)
    assert "PROJET" in text and "Agent AGT-7" in text and "Camille Durand" in text
    draft_csv = console.client.get(f"{campaign}/rapport.csv")
    assert 'filename="projet-' in draft_csv.headers["content-disposition"]

    not_confirmed = console.client.post(f"{campaign}/cloture", data={"csrf": csrf})
    assert not_confirmed.status_code == 400 and "Cochez la case" in not_confirmed.text
    closed = console.client.post(f"{campaign}/cloture", data={"csrf": csrf, "confirmation": "oui"})
    assert closed.status_code == 200 and "Campagne clôturée" in closed.text and "Rapport définitif" in closed.text
    with console.services.database.session() as session:
        revoked = session.get(Habilitation, decided[last].habilitation_id)
        assert revoked is not None and revoked.etat == "revoque"
        close_event = session.exec(
            select(AuditEvent).where(
                AuditEvent.operation == "console.campagnes.cloturer", AuditEvent.decision == "allowed"
            )
        ).one()
        assert close_event.details is not None and set(close_event.details["rapport_sha256"]) == {
            "json",
            "csv",
            "html",
        }

    final = console.client.get(f"{campaign}/rapport.pdf")
    assert final.headers["content-disposition"].startswith('attachment; filename="revue-habilitations-')
    text = pdf_text(final)
    assert "PROJET" not in text and "Agent AGT-7" in text
    # Signature block: the RGC who closed, by name and role, dated in France's time.
    local_day = console.clock.now.astimezone(PARIS).strftime("%d/%m/%Y")
    assert "Camille Durand" in text and "Responsable de gestion des comptes (RGC)" in text
    assert "Signature" in text and local_day in text and "agent:" not in text
    assert console.client.get(f"{campaign}/rapport.pdf").content == final.content  # frozen

    table = console.client.get(f"{campaign}/rapport.csv")
    assert table.headers["content-type"].startswith("text/csv")
    assert table.content.startswith(b"\xef\xbb\xbf")
    header, *rows = table.content.decode("utf-8-sig").splitlines()
    assert header.split(";")[:3] == ["Agent", "Identifiant", "API"] and "Décision" in header.split(";")
    assert len(rows) == len(every) and any(row.startswith("Agent AGT-7;AGT-7;") for row in rows)
    assert sum("Révoquée" in row for row in rows) == 1 and "Toujours en poste" in table.content.decode("utf-8-sig")

    # Every page and download was audited under an operation the RSSI's search can name.
    with console.services.database.session() as session:
        operations = set(
            session.exec(
                select(AuditEvent.operation).where(col(AuditEvent.operation).startswith("console.campagnes."))
            ).all()
        )
    assert operations == set(OPERATION_LABELS)


def test_a_reduction_must_leave_an_operation_and_keeps_the_ticked_ones(console: Hub) -> None:
    csrf = login(console, "rgc-cd33")
    campaign = open_review(console, csrf)
    worker = agent_named(console, "CD33", "AGT-7")
    page = console.client.get(f"{campaign}?api=gestion-sanctions-rsa-v1&agent={worker}&etat=a_decider")
    (line,) = LINE.findall(page.text)
    useless = console.client.post(
        f"{campaign}/decisions",
        data={"csrf": csrf, "elements": line, "decision": "reduire", "commentaire": "Moindre privilège"},
    )
    assert useless.status_code == 400 and "ne pourrait plus appeler aucune opération" in useless.text
    assert "AGT-7 (gestion-sanctions-rsa-v1)" in useless.text
    assert re.search(f'<input type="checkbox" id="ligne-{line}"[^>]* checked>', useless.text)  # still ticked

    kept = console.client.post(
        f"{campaign}/decisions",
        data={
            "csrf": csrf,
            "elements": line,
            "decision": "reduire",
            "operations-gestion-sanctions-rsa-v1": "lireDetailSanctionRsa",
            "filtre_api": "gestion-sanctions-rsa-v1",
        },
    )
    assert kept.status_code == 200 and "1 décision(s) enregistrée(s)" in kept.text
    assert "api=gestion-sanctions-rsa-v1" in str(kept.url)  # back to the same filtered view
    (item,) = [item for item in items_of(console, campaign) if item.id == line]
    with console.services.database.session() as session:
        grant = session.get(Habilitation, item.habilitation_id)
        assert grant is not None
    assert item.decision == "reduire"
    assert sorted(item.decision_scopes or []) == ["api_gestion-sanctions-rsav1", "gestiondesmanquements"]
    assert len(grant.scopes) > 2

    filtered = console.client.get(f"{campaign}?etat=decidees").text
    assert LINE.findall(filtered) == [line] and "Réduite" in filtered


def test_roles_are_the_admin_apis_own_both_ways(console: Hub) -> None:
    csrf = login(console, "rgc-cd33")
    campaign = open_review(console, csrf)
    line = lines(console, campaign)[0]
    assert console.client.get("/console/campagnes?organisation=CD93").status_code == 403

    # The RSSI reads the review and its reports, decides nothing, opens nothing.
    csrf = login(console, "rssi-cd33")
    listing = console.client.get("/console/campagnes")
    assert listing.status_code == 200 and "Ouvrir la revue" not in listing.text
    page = console.client.get(campaign)
    assert page.status_code == 200 and "Appliquer aux lignes cochées" not in page.text
    draft = console.client.get(f"{campaign}/rapport.pdf")
    assert draft.status_code == 200 and "Responsable Sécurité" not in pdf_text(draft)  # the RSSI does not sign
    for path, data in (
        (f"{campaign}/decisions", {"ligne": f"{line}:maintenir", "commentaire": "x"}),
        (f"{campaign}/cloture", {"confirmation": "oui"}),
    ):
        refused = console.client.post(path, data={"csrf": csrf, **data})
        assert refused.status_code == 403 and "réservée au RGC" in refused.text
    assert all(item.decision is None for item in items_of(console, campaign))

    # The integrator has no part in it.
    login(console, "integrateur-cd33")
    for path in ("/console/campagnes", campaign, f"{campaign}/rapport.csv"):
        refused = console.client.get(path)
        assert refused.status_code == 403 and "Consultation réservée" in refused.text, path

    # A decision without the session's CSRF token changes nothing.
    login(console, "rgc-cd33")
    forged = console.client.post(f"{campaign}/decisions", data={"csrf": "0" * 64, "ligne": f"{line}:revoquer"})
    assert forged.status_code == 403
    assert all(item.decision is None for item in items_of(console, campaign))


def test_the_rgc_does_not_keep_their_own_grant_even_in_a_batch(console: Hub) -> None:
    csrf = login(console, "rgc-cd33")
    # The RGC is habilitated too, by the operator (an RGC does not grant themselves).
    grant(console, agent_named(console, "CD33", "RGC-CD33"))
    campaign = open_review(console, csrf)
    every = lines(console, campaign)
    batch = console.client.post(
        f"{campaign}/decisions",
        data={"csrf": csrf, "elements": every, "decision": "maintenir", "commentaire": "Revu"},
    )
    assert batch.status_code == 403 and "RGC-CD33 (rechercher-usager-v2)" in batch.text
    assert all(item.decision is None for item in items_of(console, campaign))
