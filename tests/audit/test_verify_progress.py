"""``relais audit verify`` shows its progress on a terminal, and only there."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit import verify_scan
from audit.verify import verify_database
from relais.cli.audit import audit_group, progress_bar
from relais.core.db import Database
from tests.audit.journal_fixtures import checkpoint, public_keys, settings_for, write_events


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_when_stderr_is_not_a_terminal_or_for_json() -> None:
    assert progress_bar(io.StringIO(), as_json=False) is None
    assert progress_bar(_Terminal(), as_json=True) is None


@pytest.mark.parametrize("reference", [False, True])
def test_progress_reaches_all_leaves_then_ends_its_line(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: bool
) -> None:
    monkeypatch.setattr(verify_scan, "CHUNK", 2)
    settings = settings_for(database, tmp_path)
    write_events(database, 5)
    checkpoint(database, settings)
    terminal = _Terminal()
    show = progress_bar(terminal, as_json=False)
    assert show is not None
    with database.session() as session:
        report = verify_database(session, public_keys(settings), workers=1, progress=show, reference=reference)
    assert report.ok
    written = terminal.getvalue()
    assert written.endswith("100 % (5 / 5 feuilles)\n")
    if not reference:
        # One step per range of leaves, each redrawn on the same line.
        assert written.count("\r") == 3 and " 40 % (2 / 5 feuilles)" in written


def test_json_report_on_stdout_carries_no_progress(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relais.core.config import get_settings

    monkeypatch.setenv("RELAIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAIS_DATABASE_URL", database.url)
    get_settings.cache_clear()
    try:
        write_events(database, 3)
        runner = CliRunner()
        assert runner.invoke(audit_group, ["checkpoint"]).exit_code == 0
        result = runner.invoke(audit_group, ["verify", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["leaves"] == 3
    finally:
        get_settings.cache_clear()
