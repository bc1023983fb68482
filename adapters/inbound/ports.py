"""The inbound feed port: where rows of an editor's data come from.

A source yields rows of named text values (a CSV line, an item of an editor's REST API); a
format (``mapping.py``) says what the names mean. ``feed.apply_rows`` validates, identifies
the usager and records the rows through the reference store's rules, whatever the source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SourceRow:
    """One row: ``position`` is what errors cite (a line number, an item number)."""

    position: int
    values: Mapping[str, Any]


class InboundSource(Protocol):
    # The audit events' data_origin, e.g. "fichier:<sha256>" or "pull:<connector name>".
    origin: str

    def rows(self) -> Iterator[SourceRow]: ...
