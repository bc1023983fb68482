"""``relais fichiers import`` and ``relais fichiers pull`` as an operator runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpx import HTTPXMock

from relais.cli.main import main
from relais.core.config import get_settings
from relais.core.nir import nir_key

NIR13 = "1850733063001"
NIR = NIR13 + nir_key(NIR13)
DATASET = [
    {"type": "organisation", "data": {"code": "CD33", "type": "CD", "libelle": "Gironde", "territoire": ["33"]}},
    {
        "type": "usager",
        "data": {
            "numeroFranceTravail": "10000000001",
            "etatCivil": {"nom": "LEFÈVRE", "prenom": "HÉLÈNE", "dateNaissance": "1985-07-14", "nir": NIR},
            "adresses": [{"codeInseeCommune": "33063", "codePostal": "33000"}],
        },
    },
]


@pytest.fixture
def runner(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_DATABASE_URL", database_url)
    monkeypatch.setenv("RELAIS_GENERATE_DEV_KEYS", "true")
    get_settings.cache_clear()
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text("\n".join(json.dumps(record) for record in DATASET) + "\n", encoding="utf-8")
    cli = CliRunner()
    assert cli.invoke(main, ["import", str(dataset)]).exit_code == 0
    yield cli
    get_settings.cache_clear()


def test_import_then_reimport(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "contrats.csv"
    path.write_text(f"NIR;ETAT;DATE_SIGNATURE\n{NIR};SIGNE;2026-01-20T10:15:00+01:00\n", encoding="utf-8")
    command = ["fichiers", "import", "--format", "etats-contrat-engagement", "--organisation", "CD33", str(path)]

    first = runner.invoke(main, command)
    assert first.exit_code == 0, first.output
    assert "créées : 1" in first.output and "nir 1" in first.output

    again = runner.invoke(main, command)
    assert again.exit_code == 0
    assert "déjà importé" in again.output

    etat = runner.invoke(main, ["fichiers", "etat"])
    assert etat.exit_code == 0
    assert "etats-contrat-engagement" in etat.output and "1 lignes, 1 créées" in etat.output


def test_a_rejected_file_exits_3_with_its_lines(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "contrats.csv"
    path.write_text(f"NIR;ETAT\n{NIR13}00;SIGNE\n", encoding="utf-8")
    result = runner.invoke(
        main, ["fichiers", "import", "--format", "etats-contrat-engagement", "--organisation", "CD33", str(path)]
    )
    assert result.exit_code == 3
    assert "ligne 2 : colonne NIR : NIR invalide : clé de contrôle incorrecte" in result.output
    assert NIR13 not in result.output


def test_an_unknown_format_lists_the_available_ones(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("A\n", encoding="utf-8")
    result = runner.invoke(main, ["fichiers", "import", "--format", "inconnu", "--organisation", "CD33", str(path)])
    assert result.exit_code == 1
    assert "decisions-orientation" in result.output


def test_pull_from_the_configuration(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpx_mock: HTTPXMock
) -> None:
    config = {
        "connecteurs": [
            {
                "nom": "iodas-cd33-contrats",
                "organisation": "CD33",
                "url": "https://iodas.cd33.test/api/contrats",
                "format": "etats-contrat-engagement",
                "champ_curseur": "DATE_MAJ_IGNOREE",
            }
        ]
    }
    file = tmp_path / "connecteurs.json"
    file.write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setenv("RELAIS_PULL_CONNECTORS_FILE", str(file))
    get_settings.cache_clear()
    httpx_mock.add_response(
        url="https://iodas.cd33.test/api/contrats",
        json=[{"NIR": NIR, "ETAT": "SIGNE", "DATE_SIGNATURE": "2026-01-20T10:15:00+01:00"}],
    )
    result = runner.invoke(main, ["fichiers", "pull", "iodas-cd33-contrats"])
    assert result.exit_code == 0, result.output
    assert "1 page(s) lue(s)" in result.output and "créées : 1" in result.output
    etat = runner.invoke(main, ["fichiers", "etat"])
    assert "iodas-cd33-contrats : ok" in etat.output
    unknown = runner.invoke(main, ["fichiers", "pull", "autre"])
    assert unknown.exit_code == 1 and "iodas-cd33-contrats" in unknown.output


def test_the_command_line_reads_a_french_excel_export_as_the_console_does(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "contrats.csv"
    # Windows-1252, commas, a French date and time, a state in lower case.
    path.write_bytes(f"NIR,ETAT,DATE_SIGNATURE,ORGANISME\r\n{NIR},signé,20/01/2026 10:15,cd\r\n".encode("cp1252"))
    command = ["fichiers", "import", "--format", "etats-contrat-engagement", "--organisation", "CD33", str(path)]
    result = runner.invoke(main, command)
    assert result.exit_code == 0, result.output
    assert "créées : 1" in result.output
