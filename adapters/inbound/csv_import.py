"""``relais fichiers import`` and the console's upload: an editor's CSV file, through its format, into Relais.

The file is identified by its SHA-256: importing the same bytes under the same format again
is recognised and changes nothing (and a file whose lines were all imported before changes
nothing either, each record being keyed naturally). The whole file is one transaction. Every
change is audited with ``data_origin = "fichier:<sha256>"``.

Files come as people's tools write them: UTF-8 with or without a byte order mark, else
Windows-1252 (French Excel's "CSV (séparateur : point-virgule)"); ``;`` or ``,`` between
columns, whichever the header uses. A dry run (``check_csv``) goes through every rule of the
real import, then rolls everything back: what it reports is what the import would refuse.
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
from sqlmodel import Session, select

from adapters.inbound.feed import OPERATOR, FeedRejected, FeedReport, RowError, apply_rows, audit_rejection
from adapters.inbound.mapping import FeedFormat
from adapters.inbound.models import ImportedFile
from adapters.inbound.ports import SourceRow
from relais.core.auditing import AuditRecorder
from relais.core.db import Database
from relais.core.keys import KeySet

# Far above an editor's export; bounds what one command reads into memory.
MAX_FILE_BYTES = 200 * 1024 * 1024
# Windows-1252 is what French Excel writes; it is tried when the bytes are not UTF-8.
FALLBACK_ENCODING = "cp1252"
SEPARATORS = (";", ",", "\t")


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
        text = decode(self._content, self._format.encodage)
        separator = self.separator(text)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
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

    def separator(self, text: str) -> str:
        """The separator that splits the header into the most known columns (the format's on a tie)."""
        first = text.split("\n", 1)[0]
        candidates = (self._format.separateur, *(s for s in SEPARATORS if s != self._format.separateur))
        known = self._format.known_columns
        return max(candidates, key=lambda sep: sum(name.strip().strip('"') in known for name in first.split(sep)))

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


def header_fits(content: bytes, feed_format: FeedFormat) -> bool:
    """Whether the file's header is this format's (to point a person to the right format)."""
    try:
        text = decode(content, feed_format.encodage)
    except FeedRejected:
        return False
    source = CsvSource(content, feed_format, "")
    first = text.split("\n", 1)[0].strip()
    header = {name.strip().strip('"') for name in first.split(source.separator(text))}
    mandatory = {name for name, column in feed_format.colonnes.items() if column.obligatoire}
    return bool(header) and header <= feed_format.known_columns and mandatory <= header


def decode(content: bytes, declared: str = "utf-8") -> str:
    """The file's text: UTF-8 (byte order mark or not), the format's own encoding, else Windows-1252."""
    candidates = ["utf-8-sig"]
    if declared.lower().replace("_", "-") not in ("utf-8", "utf8"):
        candidates.append(declared)
    candidates.append(FALLBACK_ENCODING)
    for encoding in candidates:
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise FeedRejected([RowError(0, f"encodage inconnu : {declared}")]) from None
    # Windows-1252 leaves five bytes undefined: a file holding one is neither.
    raise FeedRejected([RowError(0, "encodage non reconnu : enregistrez le fichier en UTF-8 ou en Windows-1252")])


def check_csv(
    session: Session,
    keys: KeySet,
    content: bytes,
    feed_format: FeedFormat,
    *,
    organisation: str,
    audit: AuditRecorder,
    now: datetime,
    actor: str = OPERATOR,
    dry_run: bool,
) -> CsvImport:
    """Check, and unless ``dry_run`` import, ``content`` within ``session`` (the caller commits).

    Raises FeedRejected with every problem of every line. A dry run applies every rule of the
    import, then undoes it all, and audits nothing itself (its caller audits the attempt); a
    rejected import writes its rejection event, which the caller commits.
    """
    if len(content) > MAX_FILE_BYTES:
        raise FeedRejected([RowError(0, f"fichier trop volumineux (au plus {MAX_FILE_BYTES // (1024 * 1024)} Mo)")])
    sha256 = hashlib.sha256(content).hexdigest()
    previous = session.exec(
        select(ImportedFile).where(ImportedFile.sha256 == sha256, ImportedFile.format == feed_format.nom)
    ).first()
    if previous is not None:
        return CsvImport(sha256, previous.imported_at, _saved_report(previous.report))
    source = CsvSource(content, feed_format, sha256)
    operation = f"fichiers.import.{feed_format.nom}"
    savepoint = session.begin_nested()
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
            actor=actor,
        )
    except FeedRejected as rejected:
        savepoint.rollback()
        if not dry_run:
            audit_rejection(
                session,
                audit,
                origin=source.origin,
                operation=operation,
                organisation=organisation,
                errors=len(rejected.errors),
                now=now,
                actor=actor,
            )
        raise
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
        return CsvImport(sha256, None, report)
    session.add(
        ImportedFile(sha256=sha256, format=feed_format.nom, imported_at=now, lines=report.rows, report=report.as_dict())
    )
    session.flush()
    savepoint.commit()
    return CsvImport(sha256, None, report)


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
    with database.session() as session:
        try:
            result = check_csv(
                session, keys, content, feed_format, organisation=organisation, audit=audit, now=now, dry_run=False
            )
            session.commit()
        except FeedRejected:
            # The rejection's audit event is kept; the lines were rolled back.
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
    return result


def _saved_report(saved: dict[str, Any]) -> FeedReport:
    """The report of the first import of a file, as it was stored."""
    return FeedReport(
        rows=int(saved.get("lignes", 0)),
        created=int(saved.get("crees", 0)),
        updated=int(saved.get("modifies", 0)),
        unchanged=int(saved.get("inchanges", 0)),
        rules={str(rule): int(count) for rule, count in dict(saved.get("regles") or {}).items()},
    )
