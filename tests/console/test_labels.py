"""Every operation the console writes to the journal reads in plain French in the audit search:
a new page without its label would show the security officer an internal code."""

from __future__ import annotations

import re
from pathlib import Path

from api.console import securite

CONSOLE = Path(securite.__file__).parent


def test_every_console_operation_has_a_french_label() -> None:
    written = {
        name
        for source in CONSOLE.glob("*.py")
        for name in re.findall(r"\"(console\.[a-z_.]+)\"", source.read_text(encoding="utf-8"))
    }
    assert len(written) > 20
    labels = securite._labels()
    assert sorted(name for name in written if name not in labels) == []
    assert all(not label.startswith("console.") for label in labels.values())
