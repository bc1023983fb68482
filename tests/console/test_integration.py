"""The integrator's and operator's console page over HTTP: connectors, replay, CSV dry run and import.

Role checks both ways: the RGC and the RSSI are refused here unless they also hold the
integrator's role; the integrator sees only its organisation's connectors and files.
"""

from __future__ import annotations

import base64
import re

import pytest
from sqlmodel import col, select

from adapters.inbound.models import ImportedFile
from audit.models import AuditEvent
from habilitations import designations
from habilitations.models import INTEGRATEUR
from habilitations.refusals import HabilitationRefused
from habilitations.roles import Principal, principal_for
from parcours.tables import RendezVous
from relais.core.outbox import FAILED, PENDING, OutboxMessage
from relais.core.tables import Organisation
from tests.adapters.outbound_support import add_connector, publish
from tests.console.test_console import agent_named, login
from tests.support.hub import Hub
from tests.support.people import GIRONDE

HEADER = "NIR;NUMERO_FT;NOM;PRENOM;DATE_NAISSANCE;ID_RDV;DATE_RDV;MOTIF;STATUT;DUREE_MINUTES;ORGANISME"
WITH_ERRORS = (
    HEADER,
    f"{GIRONDE.nir};;;;;CONS-1;15/01/2027 10:30;AUT;Absent;45;CD",
    f"{GIRONDE.nir};;;;;CONS-2;31/02/2027 10:30;XYZ;PRIS;;CD",
    ";;;;;CONS-3;16/01/2027 10:30;AUT;PRIS;;CD",
)
FIXED = (WITH_ERRORS[0], WITH_ERRORS[1], f"{GIRONDE.nir};;;;;CONS-2;28/02/2027 10:30;AUT;PRIS;;CD")
ROWS = re.compile(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>")
CONTENU = re.compile(r'name="contenu" value="([^"]+)"')


def csv_bytes(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def upload(hub: Hub, csrf: str, content: bytes, **fields: str) -> str:
    answer = hub.client.post(
        "/console/integration/fichiers",
        data={"csrf": csrf, "format": "resultats-rdv", "action": "essai", **fields},
        files={"fichier": ("résultats rdv.csv", content, "text/csv")},
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def rdv_ids(hub: Hub) -> list[str]:
    with hub.services.database.session() as session:
        return sorted(rdv.id for rdv in session.exec(select(RendezVous)))


def test_the_integrator_dry_runs_sees_every_error_then_imports_the_fixed_file(console: Hub) -> None:
    csrf = login(console, "integrateur-cd33")
    home = console.client.get("/console/integration")
    assert home.status_code == 200 and "Déposer un fichier CSV" in home.text
    assert 'href="/console/integration"' in home.text  # in the menu

    page = upload(console, csrf, csv_bytes(*WITH_ERRORS))
    assert "Essai à blanc : 3 erreurs" in page
    assert ROWS.findall(page) == [
        ("3", "DATE_RDV", "date et heure attendues (JJ/MM/AAAA HH:MM ou AAAA-MM-JJTHH:MM+01:00)"),
        ("3", "MOTIF", "valeur non autorisée (valeurs admises : ACC, ORI, AUT)"),
        ("4", "—", "usager non identifié : NIR, numéro France Travail ou nom et date de naissance attendus"),
    ]
    # No JSON path, no NIR on the page; nothing kept; no « Importer » button.
    assert "data." not in page and GIRONDE.nir not in page and 'value="importer"' not in page
    assert rdv_ids(console) == []

    clean = upload(console, csrf, csv_bytes(*FIXED))
    assert "Essai à blanc réussi" in clean and "À créer : 2" in clean
    assert rdv_ids(console) == []
    contenu = CONTENU.search(clean)
    assert contenu is not None
    # The file comes back sealed: nothing of it readable in the page (not even base64-encoded).
    assert base64.b64encode(csv_bytes(*FIXED)).decode()[:40] not in clean

    # Sealed for this agent: the hub's operator cannot import it from a copied page.
    operator_csrf = login(console, "operateur")
    stolen = console.client.post(
        "/console/integration/fichiers",
        data={
            "csrf": operator_csrf,
            "format": "resultats-rdv",
            "organisation": "CD33",
            "action": "importer",
            "contenu": contenu.group(1),
        },
    )
    assert stolen.status_code == 400 and "plus disponible" in stolen.text and rdv_ids(console) == []
    csrf = login(console, "integrateur-cd33")
    done = console.client.post(
        "/console/integration/fichiers",
        data={
            "csrf": csrf,
            "format": "resultats-rdv",
            "organisation": "CD33",
            "action": "importer",
            "contenu": contenu.group(1),
        },
    )
    assert done.status_code == 200 and "Import terminé" in done.text and "Créées : 2" in done.text
    assert rdv_ids(console) == ["CONS-1", "CONS-2"]

    # Audited like the command line's import, naming the agent who uploaded it.
    me = agent_named(console, "CD33", "INTEG-CD33")
    with console.services.database.session() as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.channel == "adapter")).all()
        pages = session.exec(
            select(AuditEvent).where(AuditEvent.operation == "console.integration.import").order_by(col(AuditEvent.seq))
        ).all()
        stored = session.exec(select(ImportedFile)).one()
    assert [event.agent_identifiant for event in rows] == [f"agent:{me}", f"agent:{me}"]
    assert all(event.data_origin == f"fichier:{stored.sha256}" for event in rows)
    # Two dry runs, the operator's refused attempt with the copied page, the import.
    assert [(event.details or {}).get("essai") for event in pages] == [True, True, None, False]
    assert all(GIRONDE.nir not in str(event.details) for event in pages)

    # The same file again: recognised, nothing changes.
    again = upload(console, csrf, csv_bytes(*FIXED), organisation="CD33")
    assert "Fichier déjà importé" in again


def test_connectors_show_their_failures_with_the_reason_and_replay_them(console: Hub) -> None:
    database = console.services.database
    add_connector(database, console.services.keys, "https://solis.example.org/relais")
    add_connector(database, console.services.keys, "https://iodas.example.org/", name="iodas-cd93", organisation="CD93")
    publish(database, 1)
    publish(database, 1, organisation="CD93")
    with database.session() as session:
        for message in session.exec(select(OutboxMessage)):
            message.status, message.attempts, message.last_error = FAILED, 3, "réponse HTTP 503"
            session.add(message)
        session.commit()

    csrf = login(console, "integrateur-cd33")
    page = console.client.get("/console/integration").text
    assert "solis-cd33" in page and "iodas-cd93" not in page
    assert "réponse HTTP 503" in page and "Rendez-vous pris" in page and "En échec, nouvel essai prévu" in page
    with database.session() as session:
        ours = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == "connecteur:solis-cd33")).one()
        theirs = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == "connecteur:iodas-cd93")).one()
    event_id = ours.payload["id"]

    replayed = console.client.post(
        "/console/integration/connecteurs/solis-cd33/rejouer",
        data={"csrf": csrf, "evenement": event_id},
        follow_redirects=False,
    )
    assert replayed.status_code == 303 and replayed.headers["location"] == "/console/integration?fait=rejoue"
    assert "remis dans la file" in console.client.get(replayed.headers["location"]).text
    # Another organisation's connector is as if it did not exist; a form without its token is refused.
    other = console.client.post(
        "/console/integration/connecteurs/iodas-cd93/rejouer", data={"csrf": csrf, "evenement": theirs.payload["id"]}
    )
    assert other.status_code == 404 and "Connecteur inconnu" in other.text
    forged = console.client.post("/console/integration/connecteurs/solis-cd33/rejouer", data={"evenement": event_id})
    assert forged.status_code == 403
    with database.session() as session:
        assert session.get(OutboxMessage, ours.id).status == PENDING  # type: ignore[union-attr]
        assert session.get(OutboxMessage, theirs.id).status == FAILED  # type: ignore[union-attr]

    # The operator sees every organisation's connectors.
    login(console, "operateur")
    everything = console.client.get("/console/integration").text
    assert "solis-cd33" in everything and "iodas-cd93" in everything


@pytest.mark.parametrize("persona", ["rgc-cd33", "rssi-cd33", "cssi-ft"])
def test_administrators_without_the_integrator_role_are_refused(console: Hub, persona: str) -> None:
    csrf = login(console, persona)
    home = console.client.get("/console/")
    assert 'href="/console/integration"' not in home.text
    page = console.client.get("/console/integration")
    assert page.status_code == 403 and "intégrateur de l" in page.text
    posted = console.client.post(
        "/console/integration/fichiers",
        data={"csrf": csrf, "format": "resultats-rdv", "organisation": "CD33", "action": "importer"},
        files={"fichier": ("rdv.csv", csv_bytes(*FIXED), "text/csv")},
    )
    assert posted.status_code == 403 and rdv_ids(console) == []


def test_an_rgc_given_the_integrator_role_gets_the_page(console: Hub) -> None:
    login(console, "rgc-cd33")
    rgc = agent_named(console, "CD33", "RGC-CD33")
    with console.services.database.transaction() as session:
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        assert cd33.id is not None
        designations.designate(
            session,
            Principal.command_line(),
            organisation_id=cd33.id,
            agent_id=rgc,
            role=INTEGRATEUR,
            now=console.clock.now,
            recorder=console.services.audit_recorder,
            request_id="test",
        )
    page = console.client.get("/console/integration")
    assert page.status_code == 200 and "Connecteurs et imports" in page.text


def test_the_integrator_stays_out_of_beneficiary_habilitations_and_audit_pages(console: Hub) -> None:
    login(console, "integrateur-cd33")
    home = console.client.get("/console/").text
    assert 'href="/console/habilitations"' not in home and 'href="/console/audit"' not in home
    for path in ("/console/habilitations", "/console/audit"):
        assert console.client.get(path).status_code == 403


def test_the_rgc_designates_an_integrator_and_the_rssi_cannot(console: Hub) -> None:
    login(console, "rgc-cd33")  # provisions the RGC persona and its role
    login(console, "rssi-cd33")
    agent = agent_named(console, "CD33", "AGT-7")
    actors = {persona: agent_named(console, "CD33", persona.upper()) for persona in ("rgc-cd33", "rssi-cd33")}
    with console.services.database.transaction() as session:
        cd33 = session.exec(select(Organisation).where(Organisation.code == "CD33")).one()
        assert cd33.id is not None
        rgc, rssi = (
            principal_for(session, actors[persona], console.clock.now, acr=None, auth_time=None)
            for persona in ("rgc-cd33", "rssi-cd33")
        )
        assert rgc is not None and rssi is not None
        arguments = {
            "organisation_id": cd33.id,
            "agent_id": agent,
            "role": INTEGRATEUR,
            "now": console.clock.now,
            "recorder": console.services.audit_recorder,
            "request_id": "test",
        }
        with pytest.raises(HabilitationRefused):
            designations.designate(session, rssi, **arguments)  # type: ignore[arg-type]
        designated = designations.designate(session, rgc, **arguments)  # type: ignore[arg-type]
        assert designated.role == "integrateur"


def test_a_file_of_another_format_is_pointed_to_its_format(console: Hub) -> None:
    csrf = login(console, "integrateur-cd33")
    page = upload(console, csrf, csv_bytes(*FIXED), format="decisions-orientation")
    assert "colonnes non prévues par le format decisions-orientation" in page
    assert "Les colonnes de ce fichier sont celles du format « Rendez-vous et leurs suites" in page
