"""Editors' CSV files into Relais: validation per line, NIR keys, explainable matching,
duplicates, atomicity, idempotent re-import, and an audit event per change naming the file."""

# Fixtures are imported, and test parameters take their names.
# ruff: noqa: F401, F811

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlmodel import col, select

from adapters.inbound.csv_import import import_csv
from adapters.inbound.feed import FeedRejected
from adapters.inbound.mapping import load_format
from adapters.inbound.models import ImportedFile
from audit.journal import JournalRecorder
from audit.models import AuditEvent
from parcours.tables import ContratEngagement, Orientation, RendezVous, Usager
from tests.support.hub import Hub, hub, hub_app
from tests.support.people import CORSE, DOUBLON_A, GIRONDE, GIRONDE_SANS_CONTRAT, RATTACHE_EXPLICITE, SEINE_SAINT_DENIS

DECISIONS = load_format("decisions-orientation")
RDV = load_format("resultats-rdv")
CONTRATS = load_format("etats-contrat-engagement")
DECISION_HEADER = (
    "NIR;NUMERO_FT;NOM;PRENOM;DATE_NAISSANCE;PARCOURS_PRECONISE;ORGANISME_PRECONISE;ORIGINE;"
    "DECISION;DATE_DECISION;ORGANISME_DECISION;AGENT_DECISION"
)
RDV_HEADER = "NIR;NUMERO_FT;NOM;PRENOM;DATE_NAISSANCE;ID_RDV;DATE_RDV;MOTIF;STATUT;DUREE_MINUTES;ORGANISME"


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rejected_messages(hub: Hub, path: Path, feed_format=DECISIONS, organisation: str = "CD33") -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(FeedRejected) as caught:
        import_csv(
            hub.services.database,
            hub.services.keys,
            path,
            feed_format,
            organisation=organisation,
            audit=JournalRecorder(),
        )
    return [str(error) for error in caught.value.errors]


def adapter_events(hub: Hub) -> list[AuditEvent]:
    with hub.services.database.session() as session:
        query = select(AuditEvent).where(AuditEvent.channel == "adapter").order_by(col(AuditEvent.seq))
        return list(session.exec(query).all())


def usager_id(hub: Hub, numero: str) -> str:
    with hub.services.database.session() as session:
        usager = session.exec(select(Usager).where(Usager.numero_france_travail == numero)).one()
        return usager.id


def test_a_decisions_file_updates_relais_with_full_audit(hub: Hub, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "decisions.csv",
        DECISION_HEADER,
        # Found by NIR (with its key), by numéro France Travail, by name and birth date.
        f"{GIRONDE.nir};;;;;PSO;CD;INSCRIPTION_VOLONTAIRE;ACCEPTEE;02/03/2026;CD;Claire Martin",
        f";{GIRONDE_SANS_CONTRAT.numero};;;;PED;FT;;ACCEPTEE;2026-03-02;FT;",
        ";;Nom4;prénom4;20/01/2001;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
    )
    result = import_csv(
        hub.services.database, hub.services.keys, path, DECISIONS, organisation="CD33", audit=JournalRecorder()
    )

    assert result.already_imported_at is None
    assert (result.report.created, result.report.updated, result.report.unchanged) == (3, 0, 0)
    assert result.report.rules == {"nir": 1, "numero_france_travail": 1, "nom_prenom_date_naissance": 1}
    with hub.services.database.session() as session:
        decided = session.exec(select(Orientation).where(Orientation.usager_id == usager_id(hub, GIRONDE.numero))).one()
        assert decided.etat == "OUVERT" and decided.decision is not None
        assert decided.decision["etat_decision"] == "ACCEPTEE"
        assert decided.decision["date_decision"] == "2026-03-02"

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    events = adapter_events(hub)
    assert [(event.details or {}).get("regle") for event in events] == [
        "nir",
        "numero_france_travail",
        "nom_prenom_date_naissance",
    ]
    for line, event in zip((2, 3, 4), events, strict=True):
        assert event.data_origin == f"fichier:{sha}"
        assert event.operation == "fichiers.import.decisions-orientation"
        assert event.organisation == "CD33" and event.http_status == 200
        assert (event.details or {})["ligne"] == line
    assert events[0].usager_id == usager_id(hub, GIRONDE.numero)
    assert events[2].usager_id == usager_id(hub, RATTACHE_EXPLICITE.numero)


def test_reimporting_the_same_file_changes_nothing(hub: Hub, tmp_path: Path) -> None:
    lines = (
        RDV_HEADER,
        f"{GIRONDE.nir};;;;;EDITEUR-RDV-1;2026-12-03T10:00:00+01:00;ACC;PRIS;45;CD",
        f"{GIRONDE.nir};;;;;EDITEUR-RDV-2;2026-12-10T10:00:00+01:00;AUT;EFFECTUE;;CD",
    )
    path = write(tmp_path, "rdv.csv", *lines)
    first = import_csv(
        hub.services.database, hub.services.keys, path, RDV, organisation="CD33", audit=JournalRecorder()
    )
    assert first.report.created == 2
    events = len(adapter_events(hub))

    again = import_csv(
        hub.services.database, hub.services.keys, path, RDV, organisation="CD33", audit=JournalRecorder()
    )
    assert again.already_imported_at is not None and again.sha256 == first.sha256
    assert again.report.created == 2  # the first import's report, as stored

    # Other bytes (the lines in another order), same records: every line is unchanged.
    other = write(tmp_path, "rdv-bis.csv", lines[0], lines[2], lines[1])
    third = import_csv(
        hub.services.database, hub.services.keys, other, RDV, organisation="CD33", audit=JournalRecorder()
    )
    assert (third.already_imported_at, third.report.unchanged, third.report.created) == (None, 2, 0)
    assert len(adapter_events(hub)) == events
    with hub.services.database.session() as session:
        assert len(session.exec(select(RendezVous)).all()) == 2
        assert len(session.exec(select(ImportedFile)).all()) == 2

    # A changed outcome updates the appointment, audited as such.
    changed = write(tmp_path, "rdv-ter.csv", lines[0], lines[1].replace(";PRIS;", ";ABSENT;"))
    fourth = import_csv(
        hub.services.database, hub.services.keys, changed, RDV, organisation="CD33", audit=JournalRecorder()
    )
    assert fourth.report.updated == 1
    assert (adapter_events(hub)[-1].details or {})["resultat"] == "updated"


def test_malformed_lines_are_all_reported_by_line_and_nothing_is_written(hub: Hub, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "decisions.csv",
        DECISION_HEADER,
        f"{GIRONDE.nir};;;;;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
        f"{GIRONDE_SANS_CONTRAT.nir};;;;;PSO;CD;;ACCEPTEE;31/02/2026;CD;",
        f"{RATTACHE_EXPLICITE.nir};;;;;;CD;;ACCEPTEE;2026-03-02;CD;",
        f"{GIRONDE.nir};;;;;PSO;CD",
        ";;;;;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
        ";123;;;;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
    )
    messages = rejected_messages(hub, path)
    assert messages == [
        "ligne 3 : colonne DATE_DECISION : date JJ/MM/AAAA ou AAAA-MM-JJ attendue",
        "ligne 4 : colonne PARCOURS_PRECONISE : valeur obligatoire",
        "ligne 5 : 7 colonnes au lieu de 12",
        "ligne 6 : usager non identifié : NIR, numéro France Travail ou nom et date de naissance attendus",
        "ligne 7 : colonne NUMERO_FT : 11 chiffres attendus",
    ]
    # Line 2 was fine, but the file is one unit: nothing of it was kept.
    with hub.services.database.session() as session:
        assert session.exec(select(Orientation)).all() == []
    (rejection,) = adapter_events(hub)
    assert (rejection.http_status, rejection.reason) == (422, "fichier_rejete")


def test_a_value_the_contract_refuses_is_reported_with_its_line(hub: Hub, tmp_path: Path) -> None:
    path = write(tmp_path, "decisions.csv", DECISION_HEADER, f"{GIRONDE.nir};;;;;XXX;CD;;ACCEPTEE;2026-03-02;CD;")
    (message,) = rejected_messages(hub, path)
    # The CSV column is named, not the record's field.
    assert (
        message == "ligne 2 : colonne PARCOURS_PRECONISE : valeur non autorisée (valeurs admises : PED, PSO, PSP, IND)"
    )


def test_bad_nir_keys_are_refused_without_quoting_the_nir(hub: Hub, tmp_path: Path) -> None:
    wrong_key = GIRONDE.nir13 + ("00" if GIRONDE.nir[-2:] != "00" else "01")
    path = write(
        tmp_path,
        "decisions.csv",
        DECISION_HEADER,
        f"{wrong_key};;;;;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
        f"{GIRONDE.nir13};;;;;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
    )
    messages = rejected_messages(hub, path)
    assert messages == [
        "ligne 2 : colonne NIR : NIR invalide : clé de contrôle incorrecte",
        "ligne 3 : colonne NIR : NIR avec sa clé (15 caractères) attendu",
    ]
    assert not any(GIRONDE.nir13 in message for message in messages)


def test_duplicates_are_refused_and_explained(hub: Hub, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "decisions.csv",
        DECISION_HEADER,
        # Two usagers of Relais share this NIR: never guessed between.
        f"{DOUBLON_A.nir};;;;;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
        f"{GIRONDE.nir};;;;;PSO;CD;;ACCEPTEE;2026-03-02;CD;",
        # The same decision twice in the file.
        f";{GIRONDE.numero};;;;PSO;CD;;REFUSEE;2026-03-02;CD;",
        # NIR and numéro of two different people.
        f"{GIRONDE.nir};{GIRONDE_SANS_CONTRAT.numero};;;;PED;CD;;ACCEPTEE;2026-03-02;CD;",
        # Found by NIR, but born another day.
        f"{GIRONDE_SANS_CONTRAT.nir};;;;01/01/1950;PED;CD;;ACCEPTEE;2026-03-02;CD;",
    )
    assert rejected_messages(hub, path) == [
        "ligne 2 : 2 usagers portent ce NIR (doublon à résoudre dans Relais)",
        "ligne 4 : doublon de la ligne 3 (même usager et même clé)",
        "ligne 5 : le NIR et le numéro France Travail désignent des usagers différents",
        "ligne 6 : la date de naissance diffère de celle de l'usager trouvé",
    ]


def test_only_the_organisations_own_usagers_may_be_changed(hub: Hub, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "contrats.csv",
        "NUMERO_FT;ETAT;DATE_SIGNATURE",
        f"{SEINE_SAINT_DENIS.numero};SIGNE;2026-01-20T10:15:00+01:00",
    )
    assert rejected_messages(hub, path, CONTRATS, "CD33") == ["ligne 2 : usager non rattaché à l'organisation CD33"]
    result = import_csv(
        hub.services.database, hub.services.keys, path, CONTRATS, organisation="CD93", audit=JournalRecorder()
    )
    assert result.report.created == 1
    with hub.services.database.session() as session:
        contrat = session.exec(select(ContratEngagement)).one()
        assert contrat.etat == "SIGNE"


def test_the_header_must_match_the_format(hub: Hub, tmp_path: Path) -> None:
    path = write(tmp_path, "contrats.csv", "NUMERO_FT;ETAT;COMMENTAIRE_LIBRE;ETAT", f"{GIRONDE.numero};SIGNE;x;SIGNE")
    assert rejected_messages(hub, path, CONTRATS) == [
        "ligne 1 : colonnes en double : ETAT",
        "ligne 1 : colonnes non prévues par le format etats-contrat-engagement : COMMENTAIRE_LIBRE",
    ]
    missing = write(tmp_path, "sans-etat.csv", "NUMERO_FT;DATE_SIGNATURE", f"{GIRONDE.numero};")
    assert rejected_messages(hub, missing, CONTRATS) == ["ligne 1 : colonnes obligatoires absentes : ETAT"]


def test_a_windows_1252_file_is_read_as_french_excel_writes_it(hub: Hub, tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes(f"NUMERO_FT;ETAT;DATE_REFUS\n{GIRONDE.numero};Refusé;\n".encode("cp1252"))
    # Read (« Refusé » is REFUSE), then refused by the contract's rule, which names the CSV column.
    assert rejected_messages(hub, path, CONTRATS) == [
        "ligne 2 : colonne DATE_REFUS : Contrat d'engagement : cette colonne est obligatoire pour un contrat REFUSE"
    ]
    path.write_bytes(f"NUMERO_FT;ETAT;DATE_REFUS\n{GIRONDE.numero};Refusé;20/01/2026 10:15\n".encode("cp1252"))
    result = import_csv(
        hub.services.database, hub.services.keys, path, CONTRATS, organisation="CD33", audit=JournalRecorder()
    )
    assert result.report.created == 1
    with hub.services.database.session() as session:
        assert session.exec(select(ContratEngagement)).one().etat == "REFUSE"
