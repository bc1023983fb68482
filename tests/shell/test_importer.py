"""``relais import`` and the client registry, on a real migrated database."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from habilitations.clients import (
    ClientRegistryError,
    authenticate_client,
    create_client,
    get_active_client,
    upsert_client,
)
from parcours.tables import Usager, UsagerOrganisation
from relais.core.db import Database
from relais.core.keys import KeySet, generate_keyset_document, parse_keyset_document
from relais.core.nir import nir_key
from relais.core.personal_data import blind_index, decrypt_field
from relais.core.tables import Client, Organisation
from relais.importer import DatasetError, ImportReport, import_file, import_records

SECRET = "un-secret-de-test-assez-long-0001"
SCOPES = ["api_rechercher-usagerv2", "rechercheusager", "profil_accedant"]
NIR13_GIRONDE = "1850733063001"
NIR13_CORSE = "190022A004005"


@pytest.fixture
def keys() -> KeySet:
    return parse_keyset_document(generate_keyset_document(datetime.now(UTC)))


def organisation(code: str = "CD33", territoire: Iterable[str] = ("33",)) -> dict[str, Any]:
    data = {
        "code": code,
        "type": "CD",
        "libelle": f"Conseil départemental {code}",
        "territoire": list(territoire),
    }
    return {"type": "organisation", "data": data}


def client(client_id: str = "cd33-logiciel", secret: str = SECRET, **extra: Any) -> dict[str, Any]:
    data = {
        "client_id": client_id,
        "client_secret": secret,
        "organisation": "CD33",
        "scopes": SCOPES,
        **extra,
    }
    return {"type": "client", "data": data}


def usager(numero: str = "10000000001", nir13: str = NIR13_GIRONDE, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "numeroFranceTravail": numero,
        "etatCivil": {
            "civilite": "M.",
            "nom": "DUPONT",
            "prenom": "JEAN",
            "nomCorrespondance": "DUPONT",
            "prenomCorrespondance": "JEAN",
            "dateNaissance": "1985-07-14",
            "nir": nir13 + nir_key(nir13),
        },
        "adresses": [
            {
                "codeInseeCommune": "33063",
                "codePostal": "33000",
                "libelleCommune": "BORDEAUX",
                "libellePays": "FRANCE",
                "numeroTypeLibelleVoie": "12 RUE DES LILAS",
                "indicateurResidentQPV": "NQ",
            }
        ],
        "emails": [{"adresseEmail": "jean.dupont@example.org"}],
        "telephones": [{"numeroTelephone": "0639980001"}],
        "topIdentiteCertifiee": "O",
        "contrat": {"m_statut": "Inscrit", "m_date_effet_statut": "2025-06-28"},
        "organisations": [],
    }
    data.update(extra)
    return {"type": "usager", "data": data}


def dataset() -> list[dict[str, Any]]:
    return [
        organisation(),
        organisation("ML-BDX", ()),
        client(),
        usager(),
        usager("10000000002", "2920133063002", organisations=["ML-BDX"]),
        usager("10000000003", NIR13_CORSE),
    ]


def write(tmp_path: Path, records: Iterable[Any], name: str = "import.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{json.dumps(r, ensure_ascii=False)}\n" for r in records), encoding="utf-8")
    return path


def counts(report: ImportReport) -> dict[str, dict[str, int]]:
    return report.as_dict()


def row_counts(database: Database) -> tuple[int, int, int, int]:
    with database.session() as session:
        return (
            len(session.exec(select(Organisation)).all()),
            len(session.exec(select(Client)).all()),
            len(session.exec(select(Usager)).all()),
            len(session.exec(select(UsagerOrganisation)).all()),
        )


def rejected(database: Database, keys: KeySet, path: Path) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        import_file(database, keys, path)
    return caught.value


# Import -------------------------------------------------------------------------------------


def test_import_creates_then_a_second_import_changes_nothing(database: Database, keys: KeySet, tmp_path: Path) -> None:
    path = write(tmp_path, dataset())

    first = import_file(database, keys, path)
    second = import_file(database, keys, path)

    nothing = {"created": 0, "updated": 0, "unchanged": 0}
    parcours = dict.fromkeys(("orientations", "rendez_vous", "contrats_engagement", "manquements"), nothing)
    assert counts(first) == {
        "organisations": {"created": 2, "updated": 0, "unchanged": 0},
        "clients": {"created": 1, "updated": 0, "unchanged": 0},
        "usagers": {"created": 3, "updated": 0, "unchanged": 0},
        **parcours,
    }
    assert counts(second) == {
        "organisations": {"created": 0, "updated": 0, "unchanged": 2},
        "clients": {"created": 0, "updated": 0, "unchanged": 1},
        "usagers": {"created": 0, "updated": 0, "unchanged": 3},
        **parcours,
    }
    assert not second.changed
    assert "usagers : 0 créés, 0 modifiés, 3 inchangés" in second.summary_lines()
    assert row_counts(database) == (2, 1, 3, 1)


def test_the_nir_is_stored_encrypted_and_indexed(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, dataset()))

    with database.session() as session:
        corse = session.exec(select(Usager).where(Usager.numero_france_travail == "10000000003")).one()
    assert corse.nir_chiffre is not None
    assert NIR13_CORSE not in corse.nir_chiffre
    assert decrypt_field(keys, corse.nir_chiffre, context="usager.nir") == NIR13_CORSE
    assert corse.nir_index == blind_index(keys, NIR13_CORSE)
    assert corse.date_naissance.isoformat() == "1985-07-14"
    assert corse.contrat == {"m_statut": "Inscrit", "m_date_effet_statut": "2025-06-28"}


def test_changes_are_applied_and_attachments_replaced(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, dataset()))
    changed = dataset()
    changed[3]["data"]["etatCivil"]["nomCorrespondance"] = "MARTIN"
    changed[3]["data"]["organisations"] = ["ML-BDX"]
    changed[4]["data"]["organisations"] = []
    del changed[5]["data"]["contrat"]

    report = import_file(database, keys, write(tmp_path, changed, "v2.jsonl"))

    assert counts(report)["usagers"] == {"created": 0, "updated": 3, "unchanged": 0}
    with database.session() as session:
        attached = session.exec(select(UsagerOrganisation)).all()
        first = session.exec(select(Usager).where(Usager.numero_france_travail == "10000000001")).one()
        third = session.exec(select(Usager).where(Usager.numero_france_travail == "10000000003")).one()
    assert [row.usager_id for row in attached] == [first.id]
    assert first.nom_correspondance == "MARTIN"
    assert third.contrat is None


def test_a_bad_nir_key_on_line_3_rejects_the_whole_file(database: Database, keys: KeySet, tmp_path: Path) -> None:
    bad = usager()
    bad["data"]["etatCivil"]["nir"] = NIR13_GIRONDE + ("01" if nir_key(NIR13_GIRONDE) != "01" else "02")
    path = write(tmp_path, [organisation(), client(), bad, usager("10000000002", "2920133063002")])

    error = rejected(database, keys, path)

    assert error.line == 3
    assert str(error) == "ligne 3 : NIR invalide (clé de contrôle incorrecte)"
    assert NIR13_GIRONDE not in str(error) and "DUPONT" not in str(error)
    assert row_counts(database) == (0, 0, 0, 0)


def test_a_rejected_file_leaves_earlier_imports_untouched(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, dataset()))
    renamed = usager()
    renamed["data"]["etatCivil"]["nom"] = "DURAND"
    invalid = usager("10000000009", "1850733063009")
    invalid["data"]["etatCivil"]["dateNaissance"] = "2023-02-30"
    path = write(tmp_path, [organisation("CD93", ["93"]), renamed, invalid], "bad.jsonl")

    error = rejected(database, keys, path)

    assert error.line == 3 and "date" in error.reason and "2023-02-30" not in str(error)
    assert row_counts(database) == (2, 1, 3, 1)
    with database.session() as session:
        assert session.exec(select(Usager).where(Usager.nom == "DURAND")).first() is None


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (client(organisation="CD99"), "organisation inconnue « CD99 »"),
        (usager(organisations=["CD99"]), "organisation inconnue « CD99 »"),
    ],
    ids=["client", "usager"],
)
def test_an_unknown_organisation_code_is_rejected(
    database: Database, keys: KeySet, tmp_path: Path, record: dict[str, Any], reason: str
) -> None:
    path = write(tmp_path, [organisation(), record])

    error = rejected(database, keys, path)

    assert error.line == 2
    assert reason in error.reason
    assert row_counts(database) == (0, 0, 0, 0)


def test_organisations_must_come_before_their_use(database: Database, keys: KeySet, tmp_path: Path) -> None:
    error = rejected(database, keys, write(tmp_path, [client(), organisation()]))

    assert error.line == 1 and "organisation inconnue « CD33 »" in error.reason


def test_an_unknown_field_is_a_schema_violation(database: Database, keys: KeySet, tmp_path: Path) -> None:
    typo = usager()
    typo["data"]["etatCivil"]["prenomm"] = typo["data"]["etatCivil"].pop("prenom")
    path = write(tmp_path, [organisation(), typo])

    error = rejected(database, keys, path)

    assert str(error) == "ligne 2 : champ inconnu : data.etatCivil.prenomm"
    assert row_counts(database) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "JSON invalide"),
        ('{"type": "inconnu", "data": {}}', "champ type : valeur non autorisée"),
        ('{"type": "usager"}', "champ obligatoire absent : data"),
        (json.dumps({**usager(), "extra": 1}), "champ inconnu : extra"),
        (json.dumps(usager(numeroFranceTravail="1234")), "champ data.numeroFranceTravail : format invalide"),
        (json.dumps(usager(topIdentiteCertifiee="X")), "valeurs admises : O, N"),
        (
            json.dumps(usager(contrat={"m_date_effet_statut": None})),
            "champ obligatoire absent : data.contrat.m_statut",
        ),
    ],
)
def test_schema_and_syntax_errors_name_the_line_without_the_value(
    database: Database, keys: KeySet, tmp_path: Path, line: str, reason: str
) -> None:
    path = tmp_path / "import.jsonl"
    path.write_text(json.dumps(organisation()) + "\n\n" + line + "\n", encoding="utf-8")

    error = rejected(database, keys, path)

    assert error.line == 3
    assert reason in error.reason
    assert "1234" not in str(error)


def test_a_nir_with_a_malformed_structure_is_reported_by_the_schema(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    malformed = usager()
    malformed["data"]["etatCivil"]["nir"] = "185073306300"

    error = rejected(database, keys, write(tmp_path, [organisation(), malformed]))

    assert error.reason.startswith("NIR invalide")
    assert "185073306300" not in str(error)


def test_a_missing_nir_is_rejected(database: Database, keys: KeySet, tmp_path: Path) -> None:
    without = usager()
    del without["data"]["etatCivil"]["nir"]

    error = rejected(database, keys, write(tmp_path, [organisation(), without]))

    assert error.line == 2 and "NIR obligatoire" in error.reason


def test_a_key_twice_in_one_file_is_rejected(database: Database, keys: KeySet, tmp_path: Path) -> None:
    path = write(tmp_path, [organisation(), usager(), usager(nir13="2920133063002")])

    error = rejected(database, keys, path)

    assert str(error) == "ligne 3 : numéro France Travail déjà présent ligne 2"


def test_progress_is_reported_once_per_line(database: Database, keys: KeySet, tmp_path: Path) -> None:
    steps: list[int] = []
    path = tmp_path / "import.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in dataset()) + "\n\n", encoding="utf-8")

    import_file(database, keys, path, progress=steps.append)

    assert sum(steps) == 7


def test_records_can_be_imported_without_a_file(database: Database, keys: KeySet) -> None:
    report = import_records(database, keys, [organisation(), usager()])

    assert counts(report)["usagers"]["created"] == 1


# Client registry ---------------------------------------------------------------------------------


def test_the_client_secret_is_stored_as_an_argon2id_hash(database: Database, keys: KeySet, tmp_path: Path) -> None:
    import_file(database, keys, write(tmp_path, [organisation(), client()]))

    with database.session() as session:
        stored = session.exec(select(Client)).one()
        assert stored.secret_hash.startswith("$argon2id$")
        assert SECRET not in stored.secret_hash
        assert authenticate_client(session, "cd33-logiciel", SECRET) is not None
        assert authenticate_client(session, "cd33-logiciel", SECRET + "x") is None
        assert authenticate_client(session, "inconnu", SECRET) is None
        assert authenticate_client(session, "cd33-logiciel", "") is None


def test_a_changed_secret_is_rehashed_and_the_old_one_stops_working(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    import_file(database, keys, write(tmp_path, [organisation(), client()]))
    new_secret = "un-autre-secret-de-test-0002"

    report = import_file(database, keys, write(tmp_path, [organisation(), client(secret=new_secret)], "v2.jsonl"))

    assert counts(report)["clients"] == {"created": 0, "updated": 1, "unchanged": 0}
    with database.session() as session:
        assert authenticate_client(session, "cd33-logiciel", SECRET) is None
        assert authenticate_client(session, "cd33-logiciel", new_secret) is not None


def test_a_disabled_client_neither_authenticates_nor_is_active(
    database: Database, keys: KeySet, tmp_path: Path
) -> None:
    import_file(database, keys, write(tmp_path, [organisation(), client(enabled=False, rate_limit_per_second=5)]))

    with database.session() as session:
        assert authenticate_client(session, "cd33-logiciel", SECRET) is None
        assert get_active_client(session, "cd33-logiciel") is None
        assert session.exec(select(Client)).one().rate_limit_per_second == 5


def test_create_client_generates_a_strong_secret_shown_once(database: Database, keys: KeySet) -> None:
    import_records(database, keys, [organisation()])

    with database.transaction() as session:
        created, secret = create_client(session, client_id="cd33-app", organisation_code="CD33", scopes=SCOPES)
    with database.session() as session:
        assert len(secret) >= 43
        assert secret not in created.secret_hash
        authenticated = authenticate_client(session, "cd33-app", secret)
        assert authenticated is not None and authenticated.scopes == SCOPES
        assert get_active_client(session, "cd33-app") is not None


def test_create_client_refuses_duplicates_and_unknown_organisations(database: Database, keys: KeySet) -> None:
    import_records(database, keys, [organisation()])
    with database.transaction() as session:
        create_client(session, client_id="cd33-app", organisation_code="CD33", scopes=SCOPES, secret=SECRET)

    with database.session() as session, pytest.raises(ClientRegistryError, match="existe déjà"):
        create_client(session, client_id="cd33-app", organisation_code="CD33", scopes=SCOPES)
    with database.session() as session, pytest.raises(ClientRegistryError, match="Organisation inconnue"):
        create_client(session, client_id="cd99-app", organisation_code="CD99", scopes=SCOPES)
    with database.session() as session, pytest.raises(ClientRegistryError, match="au moins un scope"):
        upsert_client(session, client_id="cd33-vide", organisation_code="CD33", scopes=[], secret=SECRET)
