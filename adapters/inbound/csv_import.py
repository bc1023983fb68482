"""``relais fichiers import``: an editor's CSV file, through its format, into Relais.

The file is identified by its SHA-256: importing the same bytes under the same format again
is recognised and changes nothing (and a file whose lines were all imported before changes
nothing either, each record being keyed naturally). The whole file is one transaction. Every
change is audited with ``data_origin = "fichier:<sha256>"``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from adapters.inbound.feed import FeedRejected, FeedReport, RowError, apply_rows, audit_rejection
from adapters.inbound.mapping import FeedFormat
from adapters.inbound.models import ImportedFile
from adapters.inbound.ports import SourceRow
from relais.core.auditing import AuditRecorder
from relais.core.db import Database
from relais.core.keys import KeySet

# Far above an editor's export; bounds what one command reads into memory.
MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class CsvImport:
    sha256: str
    already_imported_at: datetime | None
    report: FeedReport


class CsvSource:
    """The rows of a CSV file, checked against the format's columns (header first)."""

    def __init__(self, content: bytes, feed_format: FeedFormat, sha256: str) -> None:
        self.origin = f"fichier:{sha256}"
        self._content = content
        self._format = feed_format

    def rows(self) -> Iterator[SourceRow]:
        try:
            text = self._content.decode(
                "utf-8-sig" if self._format.encodage.lower() == "utf-8" else self._format.encodage
            )
        except UnicodeDecodeError as exc:
            line = self._content[: exc.start].count(b"\n") + 1
            raise FeedRejected([RowError(line, f"encodage invalide ({self._format.encodage} attendu)")]) from None
        except LookupError:
            raise FeedRejected([RowError(0, f"encodage inconnu : {self._format.encodage}")]) from None
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self._format.separateur, strict=True)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise FeedRejected([RowError(1, "fichier vide : ligne d'en-tête attendue")]) from None
        except csv.Error:
            raise FeedRejected([RowError(1, "en-tête CSV illisible")]) from None
        self._check_header(header)
        errors: list[RowError] = []
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error:
                # The csv module's message may quote the line: only its number is given.
                errors.append(RowError(reader.line_num, "ligne CSV mal formée (guillemets)"))
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                errors.append(RowError(reader.line_num, f"{len(cells)} colonnes au lieu de {len(header)}"))
                continue
            yield SourceRow(reader.line_num, dict(zip(header, cells, strict=True)))
        if errors:
            raise FeedRejected(errors)

    def _check_header(self, header: list[str]) -> None:
        errors = []
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            errors.append(RowError(1, f"colonnes en double : {', '.join(duplicates)}"))
        unknown = [name for name in header if name not in self._format.known_columns]
        if unknown:
            errors.append(RowError(1, f"colonnes non prévues par le format {self._format.nom} : {', '.join(unknown)}"))
        missing = [name for name, column in self._format.colonnes.items() if column.obligatoire and name not in header]
        if missing:
            errors.append(RowError(1, f"colonnes obligatoires absentes : {', '.join(missing)}"))
        if errors:
            raise FeedRejected(errors)


def import_csv(
    database: Database,
    keys: KeySet,
    path: Path,
    feed_format: FeedFormat,
    *,
    organisation: str,
    audit: AuditRecorder,
    now: datetime | None = None,
) -> CsvImport:
    """Import ``path`` in one transaction; raise FeedRejected (nothing written) on any bad line."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise FeedRejected([RowError(0, f"fichier trop volumineux (au plus {MAX_FILE_BYTES // (1024 * 1024)} Mo)")])
    content = path.read_bytes()
    sha256 = hashlib.sha256(content).hexdigest()
    now = now or datetime.now(UTC)
    source = CsvSource(content, feed_format, sha256)
    operation = f"fichiers.import.{feed_format.nom}"
    with database.session() as session:
        previous = session.exec(
            select(ImportedFile).where(ImportedFile.sha256 == sha256, ImportedFile.format == feed_format.nom)
        ).first()
        if previous is not None:
            return CsvImport(sha256, previous.imported_at, _saved_report(previous.report))
        try:
            report = apply_rows(
                session,
                keys,
                feed_format,
                source.rows(),
                origin=source.origin,
                operation=operation,
                organisation=organisation,
                audit=audit,
                now=now,
            )
            session.add(
                ImportedFile(
                    sha256=sha256, format=feed_format.nom, imported_at=now, lines=report.rows, report=report.as_dict()
                )
            )
            session.commit()
        except FeedRejected as rejected:
            session.rollback()
            audit_rejection(
                session,
                audit,
                origin=source.origin,
                operation=operation,
                organisation=organisation,
                errors=len(rejected.errors),
                now=now,
            )
            session.commit()
            raise
        except IntegrityError:
            # The same file imported at the same moment by another process: theirs won.
            session.rollback()
            previous = session.exec(
                select(ImportedFile).where(ImportedFile.sha256 == sha256, ImportedFile.format == feed_format.nom)
            ).one()
            return CsvImport(sha256, previous.imported_at, _saved_report(previous.report))
        except BaseException:
            session.rollback()
            raise
    return CsvImport(sha256, None, report)


def _saved_report(saved: dict[str, Any]) -> FeedReport:
    """The report of the first import of a file, as it was stored."""
    return FeedReport(
        rows=int(saved.get("lignes", 0)),
        created=int(saved.get("crees", 0)),
        updated=int(saved.get("modifies", 0)),
        unchanged=int(saved.get("inchanges", 0)),
        rules={str(rule): int(count) for rule, count in dict(saved.get("regles") or {}).items()},
    )
