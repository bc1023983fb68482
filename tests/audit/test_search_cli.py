"""``relais audit search``, ``export`` and ``detect`` on the hub's own database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit.checkpoints import load_public_key, public_key_pem
from audit.verify import verify_export
from relais.cli.main import main
from relais.core.config import get_settings
from tests.audit.audit_api_support import events, read_file
from tests.support.hub import Hub
from tests.support.people import GIRONDE, GIRONDE_SANS_CONTRAT

# The end-to-end hub fixtures (a real app on a fresh database per test).


@pytest.fixture
def cli_env(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command line on the hub's database and keys (same blind index, same signing key)."""
    monkeypatch.setenv("RELAIS_DATA_DIR", str(hub.services.settings.data_dir))
    monkeypatch.setenv("RELAIS_DATABASE_URL", hub.services.database.url)
    monkeypatch.setenv("RELAIS_GENERATE_DEV_KEYS", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_search_by_nir_reads_it_from_the_environment_never_the_arguments(
    hub: Hub, cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE_SANS_CONTRAT)
    monkeypatch.setenv("RELAIS_AUDIT_NIR", GIRONDE.nir)
    result = CliRunner().invoke(main, ["audit", "search", "--nir", "--limite", "10"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and {line["operation"] for line in lines} == {
        "RechercherUsagerParNumeroFranceTravail",
        "recupererDonneesParIdRci",
    }
    audited = events(hub)[-1]
    assert audited.channel == "cli" and audited.operation == "audit.search"
    assert audited.details == {"acteur": "cli:operateur", "filtres": ["usager"]}
    assert GIRONDE.nir13 not in str(audited.model_dump())


def test_export_jsonl_to_a_file_verifies_offline(hub: Hub, cli_env: None, tmp_path: Path) -> None:
    read_file(hub, GIRONDE)
    target = tmp_path / "export.jsonl"
    result = CliRunner().invoke(
        main, ["audit", "export", "--numero", GIRONDE.numero, "--format", "jsonl", "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    key = load_public_key(public_key_pem(get_settings()).encode())
    report = verify_export(target.read_text().splitlines(), [key])
    assert report.ok, report
    assert sum(1 for line in target.read_text().splitlines() if '"type": "event"' in line) == 2


def test_detect_is_idempotent(hub: Hub, cli_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAIS_AUDIT_BULK_READ_USAGERS", "2")
    monkeypatch.setenv("RELAIS_AUDIT_DETECTION_LAG_SECONDS", "0")
    get_settings.cache_clear()
    read_file(hub, GIRONDE)
    read_file(hub, GIRONDE_SANS_CONTRAT)
    first = CliRunner().invoke(main, ["audit", "detect"])
    assert first.exit_code == 0, first.output
    assert "incidents ouverts : 1" in first.output
    second = CliRunner().invoke(main, ["audit", "detect"])
    assert "incidents ouverts : 0" in second.output
    listing = CliRunner().invoke(main, ["audit", "incidents", "--etat", "OUVERT"])
    assert listing.exit_code == 0, listing.output
    (incident,) = [json.loads(line) for line in listing.stdout.splitlines()]
    assert incident["regle"] == "lectures_massives" and incident["organisation"] == "CD33"
