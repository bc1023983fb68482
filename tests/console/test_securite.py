"""The security officer's console pages over HTTP: audit search with refusals, dates and export,
the citizen's PDF letter, the incidents board, the integrity page, and who may open them."""

from __future__ import annotations

import json
import re
import zlib
from datetime import timedelta
from typing import Any

from sqlmodel import select

from api.console.session import SESSION_COOKIE, csrf_token
from audit.checkpoints import create_checkpoint, signing_key
from audit.detection import run_detection
from audit.incident_models import Incident, IncidentNotification
from audit.verify import verify_export
from habilitations.models import RSSI
from parcours.tables import Usager
from relais.core.auditing import AuditDraft
from tests.audit.audit_api_support import agent_with_role, events, read_file
from tests.console.test_console import login
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT

SEALED = re.compile(r'name="recherche" value="([^"]+)"')
INFOS_OPERATION = "recupererDonneesParIdRci"


def refused_call_on(hub: Hub, numero: str, *, reason: str = "habilitation_absente", days_ago: int = 0) -> None:
    """A partner call refused after its jeton named the usager, as the request pipeline records it."""
    with hub.services.database.transaction() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == numero)).one()
        hub.services.audit_recorder.record(
            session,
            AuditDraft(
                channel="partner-api",
                operation=INFOS_OPERATION,
                client_id="cd33",
                organisation="CD33",
                agent_identifiant="AGT-7",
                usager_id=usager.id,
                reason=reason,
            ),
            request_id=f"refus-{days_ago}-{reason}",
            http_status=403,
            occurred_at=hub.clock.now - timedelta(days=days_ago),
        )


def incident_of_cd33(hub: Hub) -> str:
    """An incident of CD33, raised by the bulk-read rule on real partner calls."""
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE_SANS_CONTRAT)
    settings = hub.services.settings.model_copy(update={"audit_bulk_read_usagers": 2, "audit_detection_lag_seconds": 0})
    (opened,) = run_detection(hub.services.database, settings, now=hub.clock).opened
    return opened


def session_as(hub: Hub, organisation: str, role: str | None, identifiant: str) -> str:
    """A console session for an agent no persona stands for; the CSRF token of its forms."""
    token = hub.admin_token(agent_with_role(hub, organisation, role, identifiant))
    hub.client.cookies.clear()
    hub.client.cookies.set(SESSION_COOKIE, token, path="/console")
    return csrf_token(token)


def pdf_text(content: bytes) -> str:
    """The text a PDF shows (fpdf2 writes its page streams deflated, in Latin-1)."""
    shown = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content, re.S):
        try:
            shown.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            continue
    return " ".join(re.findall(r"\((.*?)\)\s*Tj", " ".join(shown)))


def search(hub: Hub, csrf: str, **form: str) -> Any:
    return hub.client.post("/console/audit", data={"csrf": csrf, "type": "numero", "periode": "30", **form})


def test_search_shows_refusals_with_their_reason_and_exports_them_for_french_excel(console: Hub) -> None:
    read_file(console, GIRONDE)
    refused_call_on(console, GIRONDE.numero)
    csrf = login(console, "rssi-cd33")
    found = search(console, csrf, valeur=GIRONDE.numero)
    assert found.status_code == 200
    assert "dont 1 refus" in found.text
    assert "L&#39;agent n&#39;a pas d&#39;habilitation pour ce service" in found.text
    assert "Récupérer les informations administratives de l&#39;usager" in found.text
    assert GIRONDE.numero not in found.text
    sealed = SEALED.search(found.text)
    assert sealed and GIRONDE.numero not in sealed.group(1)

    exported = console.client.post("/console/audit/export", data={"csrf": csrf, "recherche": sealed.group(1)})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    assert exported.content.startswith("\ufeff".encode())
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert lines[0].split(";")[:5] == ["Date et heure (Paris)", "Opération", "Organisation", "Agent", "Décision"]
    refusals = [line for line in lines[1:] if ";Refusé;" in line]
    assert len(refusals) == 1 and "pas d'habilitation pour ce service" in refusals[0]
    assert any(";Autorisé;" in line for line in lines[1:])
    assert GIRONDE.numero not in exported.text and GIRONDE.nir13 not in exported.text
    audited = events(console)[-1]
    assert audited.operation == "console.audit.export" and audited.details and audited.details["lignes"] == 3
    assert audited.target and audited.target.startswith("usager:")


def test_date_pickers_choose_whole_local_days(console: Hub) -> None:
    refused_call_on(console, GIRONDE.numero, days_ago=10)
    csrf = login(console, "rssi-cd33")
    day = (console.clock.now - timedelta(days=10)).date()
    inside = search(console, csrf, valeur=GIRONDE.numero, periode="dates", du=(day - timedelta(days=1)).isoformat())
    assert inside.status_code == 200 and "Résultats : 1 événement" in inside.text
    # French Excel habits: jj/mm/aaaa typed where the browser has no date picker.
    before = (day - timedelta(days=3)).strftime("%d/%m/%Y"), (day - timedelta(days=2)).strftime("%d/%m/%Y")
    outside = search(console, csrf, valeur=GIRONDE.numero, periode="dates", du=before[0], au=before[1])
    assert outside.status_code == 200 and "Résultats : 0 événement" in outside.text
    # Dates typed win over the period button still ticked.
    backwards = search(console, csrf, periode="30", du=before[1], au=before[0])
    assert backwards.status_code == 400 and "La date de fin précède la date de début" in backwards.text
    assert search(console, csrf, periode="dates", du="31/02/2026").status_code == 400


def test_the_citizen_letter_lists_consultations_counts_refusals_and_masks_the_nir(console: Hub) -> None:
    read_file(console, GIRONDE)
    refused_call_on(console, GIRONDE.numero)
    refused_call_on(console, GIRONDE.numero, reason="agent_bloque", days_ago=1)
    csrf = login(console, "rssi-cd33")
    found = console.client.post(
        "/console/audit", data={"csrf": csrf, "type": "nir", "valeur": GIRONDE.nir13, "periode": "30"}
    )
    sealed = SEALED.search(found.text)
    assert sealed and "Télécharger la lettre" in found.text
    letter = console.client.post("/console/audit/lettre", data={"csrf": csrf, "recherche": sealed.group(1)})
    assert letter.status_code == 200 and letter.headers["content-type"] == "application/pdf"
    assert letter.content.startswith(b"%PDF")
    text = pdf_text(letter.content)
    assert "Département de la Gironde" in text or "Département 33" in text
    assert "2 consultations" in text and "2 tentatives de consultation ont été refusées" in text
    assert "Signature" in text
    assert GIRONDE.nir13 not in text and "*" * 10 + GIRONDE.nir13[-3:] in text
    audited = events(console)[-1]
    assert audited.operation == "console.audit.lettre" and audited.details and audited.details["refus"] == 2
    assert GIRONDE.nir13 not in str(audited.details) and GIRONDE.nir13 not in (audited.target or "")


def test_a_sealed_search_serves_only_the_agent_who_made_it(console: Hub) -> None:
    csrf = login(console, "rssi-cd33")
    sealed = SEALED.search(search(console, csrf, valeur=GIRONDE.numero).text)
    assert sealed
    other = session_as(console, "FT-NAQ", "cssi", "CSSI-FT")
    stolen = console.client.post("/console/audit/lettre", data={"csrf": other, "recherche": sealed.group(1)})
    assert stolen.status_code == 400 and "Recherche expirée" in stolen.text
    forged = console.client.post("/console/audit/export", data={"csrf": other, "recherche": "abc"})
    assert forged.status_code == 400


def test_the_incidents_board_counts_down_and_moves_an_incident_to_notifie(console: Hub) -> None:
    incident = incident_of_cd33(console)
    console.clock.now += timedelta(hours=16, minutes=48)
    csrf = login(console, "rssi-cd33")
    board = console.client.get("/console/incidents")
    assert board.status_code == 200
    assert "Lectures en masse de dossiers" in board.text and "reste 31 h 12 min" in board.text
    page = console.client.get(f"/console/incidents/{incident}")
    assert page.status_code == 200 and "reste 31 h 12 min" in page.text and "Qualifier" in page.text
    own = agent_with_role(console, "CD33", RSSI, "RSSI-CD33")
    followed = console.client.post(
        f"/console/incidents/{incident}/suivi", data={"csrf": csrf, "gravite": "elevee", "assigne": str(own)}
    )
    assert followed.status_code == 200 and "Gravité et responsable enregistrés" in followed.text
    assert "Élevée" in followed.text
    for state, comment in (("QUALIFIE", "Lecture en masse confirmée"), ("NOTIFIE", "DPO informé par courriel")):
        moved = console.client.post(
            f"/console/incidents/{incident}/transition",
            data={"csrf": csrf, "etat": state, "commentaire": comment, "etat_actuel": ""},
        )
        assert moved.status_code == 200 and "État de l&#39;incident modifié" in moved.text, moved.text
        assert comment in moved.text
    notified = console.client.post(
        f"/console/incidents/{incident}/notification",
        data={"csrf": csrf, "destinataire": "CSSI France Travail", "date": "", "heure": ""},
    )
    assert notified.status_code == 200 and "notifié : CSSI France Travail, le " in notified.text
    with console.services.database.session() as session:
        stored = session.get(Incident, incident)
        assert stored is not None and stored.etat == "NOTIFIE" and stored.gravite == "elevee"
        assert stored.assigne_agent_id == own
        assert session.exec(select(IncidentNotification)).one().destinataire == "CSSI France Travail"
    assert "Notifié" in console.client.get("/console/incidents").text
    # A comment is required, and a forbidden move is refused with the domain's message.
    blank = console.client.post(
        f"/console/incidents/{incident}/transition", data={"csrf": csrf, "etat": "CLOS", "commentaire": " "}
    )
    assert blank.status_code == 400 and "commentaire est obligatoire" in blank.text
    back = console.client.post(
        f"/console/incidents/{incident}/transition", data={"csrf": csrf, "etat": "QUALIFIE", "commentaire": "x"}
    )
    assert back.status_code == 409


def test_the_incident_page_gives_an_evidence_pack_that_verifies_offline(console: Hub) -> None:
    incident = incident_of_cd33(console)
    login(console, "rssi-cd33")
    page = console.client.get(f"/console/incidents/{incident}")
    assert f'href="/console/incidents/{incident}/preuves"' in page.text
    pack = console.client.get(f"/console/incidents/{incident}/preuves")
    assert pack.status_code == 200 and pack.headers["content-type"].startswith("application/jsonl")
    assert f"incident-{incident}-preuves.jsonl" in pack.headers["content-disposition"]
    lines = pack.text.splitlines()
    with console.services.database.session() as session:
        stored = session.get(Incident, incident)
        assert stored is not None
        in_question = stored.nombre_preuves
    report = verify_export(lines, [signing_key(console.services.settings).public_key()])
    assert report.ok, report.problems
    records = [json.loads(line) for line in lines]
    proven = [record for record in records if record["type"] == "event"]
    assert in_question >= 2 and len(proven) == in_question
    assert all(record["proof"] is not None for record in proven)
    # Another département's officer does not get it.
    session_as(console, "CD2A", RSSI, "RSSI-CD2A")
    assert console.client.get(f"/console/incidents/{incident}/preuves").status_code == 404


def test_an_overdue_incident_says_so_in_words(console: Hub) -> None:
    incident_of_cd33(console)
    console.clock.now += timedelta(hours=50, minutes=5)
    login(console, "rssi-cd33")
    board = console.client.get("/console/incidents").text
    assert "En retard de 2 h 05 min" in board and 'class="echeance-retard"' in board


def test_assignee_must_be_an_agent_of_the_incident_organisation(console: Hub) -> None:
    incident = incident_of_cd33(console)
    stranger = agent_with_role(console, "CD93", None, "AGT-93-X")
    csrf = login(console, "rssi-cd33")
    refused = console.client.post(
        f"/console/incidents/{incident}/suivi", data={"csrf": csrf, "gravite": "faible", "assigne": str(stranger)}
    )
    assert refused.status_code == 400 and "agent de l&#39;organisation concernée" in refused.text
    with console.services.database.session() as session:
        stored = session.get(Incident, incident)
        assert stored is not None and stored.gravite == "moyenne" and stored.assigne_agent_id is None


def test_the_integrity_page_verifies_on_demand_and_offers_the_public_key(console: Hub) -> None:
    read_file(console, GIRONDE)
    checkpoint = create_checkpoint(console.services.database, console.services.settings, now=console.clock.now)
    assert checkpoint is not None
    csrf = login(console, "rssi-cd33")
    page = console.client.get("/console/integrite")
    assert page.status_code == 200 and "Aucune vérification lancée" in page.text
    assert checkpoint.root_hash in page.text and f"{checkpoint.tree_size} entrées" in page.text
    assert "relais audit verify" in page.text
    verified = console.client.post("/console/integrite/verification", data={"csrf": csrf})
    assert verified.status_code == 200 and "Vérification réussie" in verified.text
    assert "Journal intègre" in verified.text
    again = console.client.get("/console/integrite")
    assert "journal intègre" in again.text and "Dernière vérification depuis la console" in again.text
    key = console.client.get("/console/integrite/cle-publique.pem")
    assert key.status_code == 200 and key.text.startswith("-----BEGIN PUBLIC KEY-----")
    assert "attachment" in key.headers["content-disposition"]


PAGES = ("/console/audit", "/console/incidents", "/console/integrite", "/console/integrite/cle-publique.pem")


def test_rgc_and_integrator_are_refused_on_every_security_page(console: Hub) -> None:
    incident = incident_of_cd33(console)
    for persona in ("rgc-cd33", "integrateur-cd33"):
        csrf = login(console, persona)
        for path in (*PAGES, f"/console/incidents/{incident}"):
            answer = console.client.get(path)
            assert answer.status_code == 403 and "Réservé au RSSI" in answer.text, (persona, path)
        for path, data in (
            ("/console/audit", {"type": "numero", "periode": "30"}),
            ("/console/audit/export", {"recherche": "x"}),
            ("/console/audit/lettre", {"recherche": "x"}),
            ("/console/integrite/verification", {}),
            (f"/console/incidents/{incident}/transition", {"etat": "CLOS", "commentaire": "non"}),
            (f"/console/incidents/{incident}/suivi", {"gravite": "faible"}),
            (f"/console/incidents/{incident}/notification", {"destinataire": "moi"}),
        ):
            answer = console.client.post(path, data={"csrf": csrf, **data})
            assert answer.status_code == 403 and "Réservé au RSSI" in answer.text, (persona, path)
    with console.services.database.session() as session:
        stored = session.get(Incident, incident)
        assert stored is not None and stored.etat == "OUVERT" and stored.gravite == "moyenne"


def test_an_rssi_of_another_departement_sees_nothing_of_cd33(console: Hub) -> None:
    incident = incident_of_cd33(console)
    refused_call_on(console, GIRONDE.numero)
    csrf = session_as(console, "CD93", RSSI, "RSSI-CD93")
    board = console.client.get("/console/incidents")
    assert board.status_code == 200 and "Aucun incident dans votre périmètre" in board.text
    assert console.client.get(f"/console/incidents/{incident}").status_code == 404
    moved = console.client.post(
        f"/console/incidents/{incident}/transition", data={"csrf": csrf, "etat": "CLOS", "commentaire": "faux"}
    )
    assert moved.status_code == 404
    found = search(console, csrf, valeur=GIRONDE.numero)
    assert found.status_code == 200 and "Résultats : 0 événement" in found.text
    everything = search(console, csrf)
    assert "CD33" not in everything.text.split("titre-resultats", 1)[1]
