"""Editors' CSV files as people's tools write them: French Excel's encoding, separator and dates,
codes in any case; every problem of every line in one report, by CSV column; a dry run that
keeps nothing; appointment outcomes told to the editors by their own event."""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from adapters.inbound.csv_import import check_csv, import_csv
from adapters.inbound.feed import FeedRejected
from adapters.inbound.mapping import load_format
from adapters.inbound.models import ImportedFile
from audit.journal import JournalRecorder
from parcours.tables import RendezVous
from relais.core.outbox import OutboxMessage
from tests.adapters.outbound_support import add_connector
from tests.adapters.test_domain_events import RDV_BODY
from tests.parcours.test_parcours_journey import CD33_SCOPES, jeton
from tests.parcours.test_parcours_journey import RDV as RDV_API
from tests.support.hub import Hub, hub, hub_app
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT

RDV = load_format("resultats-rdv")
HEADER = "NIR;NUMERO_FT;NOM;PRENOM;DATE_NAISSANCE;ID_RDV;DATE_RDV;MOTIF;STATUT;DUREE_MINUTES;ORGANISME"


def excel_export(*lines: str) -> bytes:
    """What French Excel writes for « CSV (séparateur : point-virgule) »: Windows-1252, CRLF."""
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def run(hub: Hub, tmp_path: Path, content: bytes) -> list[str]:
    path = tmp_path / "rdv.csv"
    path.write_bytes(content)
    with pytest.raises(FeedRejected) as caught:
        import_csv(hub.services.database, hub.services.keys, path, RDV, organisation="CD33", audit=JournalRecorder())
    return [str(error) for error in caught.value.errors]


def imported(hub: Hub, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "rdv.csv"
    path.write_bytes(content)
    import_csv(hub.services.database, hub.services.keys, path, RDV, organisation="CD33", audit=JournalRecorder())


def topics(hub: Hub) -> list[str]:
    with hub.services.database.session() as session:
        return [m.topic for m in session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at)))]


def test_a_french_excel_export_is_imported_as_written(hub: Hub, tmp_path: Path) -> None:
    content = excel_export(
        # Accents in Windows-1252, commas between columns, French date and time, codes in any case.
        HEADER.replace(";", ","),
        f"{GIRONDE.nir},,Lefèvre,Hélène,,ED-1,15/01/2027 10:30,acc,Absent,45,cd",
        f"{GIRONDE.nir},,Lefèvre,Hélène,,ED-2,16/01/2027 14h05,Aut, effectue ,,CD",
    )
    imported(hub, tmp_path, content)

    with hub.services.database.session() as session:
        rdvs = {rdv.id: rdv for rdv in session.exec(select(RendezVous))}
    assert (rdvs["ED-1"].statut, rdvs["ED-1"].motif, rdvs["ED-1"].duree) == ("ABSENT", "ACC", 45)
    assert rdvs["ED-2"].statut == "EFFECTUE"
    # 10:30 in Paris in January is 09:30 UTC.
    moment = rdvs["ED-1"].date
    assert (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) == datetime(2027, 1, 15, 9, 30, tzinfo=UTC)


def test_a_utf8_file_with_a_byte_order_mark_is_read(hub: Hub, tmp_path: Path) -> None:
    content = "\ufeff" + HEADER + "\n" + f"{GIRONDE.nir};;Lefèvre;;;ED-3;2027-01-15T10:30:00+01:00;AUT;PRIS;;CD\n"
    imported(hub, tmp_path, content.encode("utf-8"))
    with hub.services.database.session() as session:
        assert session.get(RendezVous, "ED-3") is not None


def test_a_file_neither_utf8_nor_windows_1252_is_refused(hub: Hub, tmp_path: Path) -> None:
    # 0x81 is undefined in Windows-1252 and invalid alone in UTF-8.
    content = HEADER.encode() + b"\n" + f"{GIRONDE.nir};;".encode() + b"\x81\xe9" + b";;;ED-4;;;;;\n"
    assert run(hub, tmp_path, content) == [
        "ligne 0 : encodage non reconnu : enregistrez le fichier en UTF-8 ou en Windows-1252"
    ]


def test_every_problem_of_every_line_is_reported_at_once_by_column(hub: Hub, tmp_path: Path) -> None:
    content = excel_export(
        HEADER,
        # Four problems on one line: date, motif, statut, duration.
        f"{GIRONDE.nir};;;;;ED-5;32/01/2027 10:30;XYZ;VENU;une heure;CD",
        f"{GIRONDE.nir};;;;;ED-6;15/01/2027 10:30;AUT;PRIS;45;CD",
        # An unknown usager and a missing appointment id, on the same line.
        ";99999999999;;;;;15/01/2027 10:30;AUT;PRIS;;CD",
    )
    assert run(hub, tmp_path, content) == [
        "ligne 2 : colonne DATE_RDV : date et heure attendues (JJ/MM/AAAA HH:MM ou AAAA-MM-JJTHH:MM+01:00)",
        "ligne 2 : colonne MOTIF : valeur non autorisée (valeurs admises : ACC, ORI, AUT)",
        "ligne 2 : colonne STATUT : valeur non autorisée (valeurs admises : PRIS, EFFECTUE, MODIFIE, ABSENT, ANNULE)",
        "ligne 2 : colonne DUREE_MINUTES : nombre entier attendu",
        "ligne 4 : aucun usager ne correspond (NIR, puis numéro France Travail, puis nom et date de naissance)",
        "ligne 4 : colonne ID_RDV : valeur obligatoire",
    ]


def test_a_dry_run_reports_what_the_import_would_do_and_keeps_nothing(hub: Hub) -> None:
    add_connector(hub.services.database, hub.services.keys, "https://solis.example.org/relais")
    content = excel_export(HEADER, f"{GIRONDE.nir};;;;;ED-7;15/01/2027 10:30;AUT;EFFECTUE;;CD")
    database, keys = hub.services.database, hub.services.keys
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    with database.session() as session:
        trial = check_csv(
            session, keys, content, RDV, organisation="CD33", audit=JournalRecorder(), now=now, dry_run=True
        )
        session.commit()
    assert (trial.report.rows, trial.report.created, trial.already_imported_at) == (1, 1, None)
    with database.session() as session:
        assert session.exec(select(RendezVous)).all() == []
        assert session.exec(select(ImportedFile)).all() == []
    assert topics(hub) == []

    with database.session() as session:
        done = check_csv(
            session, keys, content, RDV, organisation="CD33", audit=JournalRecorder(), now=now, dry_run=False
        )
        session.commit()
    assert done.report.created == 1
    with database.session() as session:
        assert session.get(RendezVous, "ED-7") is not None


def test_imported_outcomes_publish_their_own_event(hub: Hub, tmp_path: Path) -> None:
    add_connector(hub.services.database, hub.services.keys, "https://solis.example.org/relais")
    imported(
        hub,
        tmp_path,
        excel_export(
            HEADER,
            f"{GIRONDE.nir};;;;;ED-8;15/01/2027 10:30;AUT;ABSENT;;CD",
            f"{GIRONDE.nir};;;;;ED-9;15/01/2027 11:30;AUT;EFFECTUE;;CD",
            f"{GIRONDE.nir};;;;;ED-10;15/01/2027 12:30;AUT;PRIS;;CD",
        ),
    )
    assert sorted(topics(hub)) == ["rendez_vous.absent", "rendez_vous.effectue", "rendez_vous.pris"]

    # The booked one is then cancelled in the editor's software: « annulé », not « pris » again.
    imported(hub, tmp_path, excel_export(HEADER, f"{GIRONDE.nir};;;;;ED-10;15/01/2027 12:30;AUT;ANNULE;;CD"))
    assert topics(hub)[-1] == "rendez_vous.annule"
    with hub.services.database.session() as session:
        told = session.exec(select(OutboxMessage).where(OutboxMessage.topic == "rendez_vous.absent")).one()
    assert told.payload["donnees"]["rendezVous"]["statut"] == "ABSENT"
    assert GIRONDE_SANS_CONTRAT.numero not in str(told.payload)


def test_an_outcome_set_through_the_api_is_told_by_its_own_event_too(hub: Hub) -> None:
    add_connector(hub.services.database, hub.services.keys, "https://solis.example.org/relais")
    cd33 = hub.token("cd33", CD33_SCOPES)
    headers = hub.headers(cd33, **{"ft-jeton-usager": jeton(hub, cd33, GIRONDE.numero)})
    body = {**RDV_BODY, "motif": "AUT"}
    created = hub.client.post(f"{RDV_API}/rendez-vous", json=body, headers=headers)
    assert created.status_code == 202, created.text
    hub.clock.now += timedelta(seconds=1)  # the outbox keeps the order of the changes by time
    done = hub.client.put(
        f"{RDV_API}/rendez-vous", json={**body, "id": created.json()["id"], "statut": "EFFECTUE"}, headers=headers
    )
    assert done.status_code in (200, 202), done.text
    assert topics(hub) == ["rendez_vous.pris", "rendez_vous.effectue"]
