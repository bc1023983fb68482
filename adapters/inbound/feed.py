"""Apply rows of an inbound feed: validate every row, identify its usager, record it, audit it.

The records are checked by the import format (``import_format``: the schema ``relais
import`` checks) and recorded by the parcours domain (``parcours.records``, the rules ``relais
import`` and the API apply), so a CSV line, a pulled item, an API call and a JSONL record leave
the same state. All rows are checked before anything is kept: the run is one transaction and
a single bad row rejects it, with every problem of every row reported at once, by its position
and the column it concerns (never a JSON path: the person fixing the file sees columns). Every row that
changed something gets its own audit event (channel ``adapter``, written by the
``AuditRecorder`` the caller hands in) naming the source as its origin and the matching rule
that found the usager.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from adapters.inbound.import_format import DatasetError, canonical_codes, check_record, record_problems
from adapters.inbound.mapping import CellError, CellErrors, FeedFormat
from adapters.inbound.matching import Match, MatchError, identity_of, match_usager
from adapters.inbound.ports import SourceRow
from parcours.perimeter import is_attached
from parcours.ports import Refused
from parcours.records import ParcoursRecords
from relais.core.auditing import AuditDraft, AuditRecorder
from relais.core.keys import KeySet
from relais.core.tables import Organisation
from relais.core.text import champ_invalide

CHANNEL = "adapter"
# Keys that make two rows of one run the same record (the second would silently win).
_NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "orientation": ("numeroFranceTravail", "origine", "parcours", "organisme", "structure"),
    "rendez-vous": ("id",),
    "contrat-engagement": ("numeroFranceTravail",),
    "manquement": ("numeroFranceTravail", "consequences"),
}
MAX_REPORTED_ERRORS = 200
# Who the audit trail names as having run a feed, when no agent did (the command line, a pull).
OPERATOR = "cli:operateur"
# How the parcours rules name a field in their messages (« Rendez-vous : le champ duree ... »).
_FIELD_NAMED = re.compile(r"le champ ([A-Za-z_][A-Za-z0-9_.]*)")
# Stands for the usager's number while a row whose usager was not found is checked.
_ANY_NUMERO = "00000000000"


@dataclass(frozen=True)
class RowError:
    position: int
    message: str
    # The CSV column (or source field) concerned, when the problem is one cell's.
    column: str | None = None

    def __str__(self) -> str:
        where = f"colonne {self.column} : " if self.column else ""
        return f"ligne {self.position} : {where}{self.message}"


class FeedRejected(Exception):
    """The run is rejected and nothing was written; ``errors`` cite rows, never values."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} ligne(s) en erreur")
        self.errors = errors


@dataclass
class FeedReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # How many rows each matching rule identified.
    rules: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lignes": self.rows,
            "crees": self.created,
            "modifies": self.updated,
            "inchanges": self.unchanged,
            "regles": dict(sorted(self.rules.items())),
        }


def apply_rows(
    session: Session,
    keys: KeySet,
    feed_format: FeedFormat,
    rows: Iterable[SourceRow],
    *,
    origin: str,
    operation: str,
    organisation: str,
    audit: AuditRecorder,
    now: datetime,
    actor: str = OPERATOR,
) -> FeedReport:
    """Record ``rows`` in ``session``; raise FeedRejected (the caller rolls back, nothing is kept).

    ``organisation`` is the code of the organisation whose editor sent the rows: each row's
    usager must be attached to it (its territory or an explicit attachment), as a partner call
    of that organisation would require. ``audit`` writes one event per row that changed something,
    naming ``actor`` (``agent:<id>`` for a file uploaded in the console).
    Rows found valid are still applied when others are not, so that the domain rules' refusals
    are reported in the same pass; the caller's rollback then drops them.
    """
    owner = session.exec(select(Organisation).where(Organisation.code == organisation)).first()
    if owner is None:
        raise FeedRejected([RowError(0, f"organisation inconnue : « {organisation} »")])
    prepared, errors = _prepare(session, keys, feed_format, rows, owner)
    report = FeedReport(rows=len(prepared) + len({error.position for error in errors}))
    records = ParcoursRecords(session, keys, now)
    run_id = uuid.uuid4().hex
    for position, record, match in prepared:
        # A savepoint per row: a refused row leaves nothing behind, and the next rows are still checked.
        savepoint = session.begin_nested()
        try:
            check_record(position, record)
            outcome = records.apply(position, record["type"], record["data"])
        except DatasetError as exc:
            savepoint.rollback()
            errors.append(RowError(position, exc.reason))
            continue
        except Refused as refused:
            # The domain rules' messages name fields, never values.
            savepoint.rollback()
            errors.append(_domain_error(feed_format, position, refused.message))
            continue
        savepoint.commit()
        report.rules[match.rule] = report.rules.get(match.rule, 0) + 1
        setattr(report, outcome, getattr(report, outcome) + 1)
        if outcome != "unchanged":
            _audit(
                session,
                audit,
                match,
                organisation=owner.code,
                origin=origin,
                operation=operation,
                run_id=run_id,
                position=position,
                outcome=outcome,
                now=now,
                actor=actor,
            )
    if errors:
        errors.sort(key=lambda error: error.position)
        raise FeedRejected(errors[:MAX_REPORTED_ERRORS])
    return report


def audit_rejection(
    session: Session,
    audit: AuditRecorder,
    *,
    origin: str,
    operation: str,
    organisation: str,
    errors: int,
    now: datetime,
    actor: str = OPERATOR,
) -> None:
    """One event for a rejected run: who tried what, from where, and how many rows were wrong."""
    draft = AuditDraft(
        channel=CHANNEL,
        operation=operation,
        organisation=organisation[:64],
        agent_identifiant=actor,
        data_origin=origin[:128],
        reason="fichier_rejete",
        details={"lignes_en_erreur": errors},
    )
    audit.record(session, draft, request_id=uuid.uuid4().hex, http_status=422, occurred_at=now)


def _prepare(
    session: Session, keys: KeySet, feed_format: FeedFormat, rows: Iterable[SourceRow], owner: Organisation
) -> tuple[list[tuple[int, dict[str, Any], Match]], list[RowError]]:
    prepared: list[tuple[int, dict[str, Any], Match]] = []
    errors: list[RowError] = []
    seen: dict[tuple[Any, ...], int] = {}
    key_fields = _NATURAL_KEYS[feed_format.enregistrement]
    try:
        for row in rows:
            _prepare_row(session, keys, feed_format, row, owner, key_fields, seen, prepared, errors)
    except FeedRejected as structural:
        # The source's own errors (a malformed CSV line...) come with the rows' errors.
        errors.extend(structural.errors)
    errors.sort(key=lambda error: error.position)
    return prepared, errors


def _prepare_row(
    session: Session,
    keys: KeySet,
    feed_format: FeedFormat,
    row: SourceRow,
    owner: Organisation,
    key_fields: tuple[str, ...],
    seen: dict[tuple[Any, ...], int],
    prepared: list[tuple[int, dict[str, Any], Match]],
    errors: list[RowError],
) -> None:
    found: list[RowError] = []
    unstorable = champ_invalide(dict(row.values))
    if unstorable is not None:
        errors.append(RowError(row.position, "caractère non autorisé (nul ou UTF-16 isolé)", unstorable))
        return
    match: Match | None = None
    try:
        identity = identity_of(row.values, feed_format.identite, nir_key_required=feed_format.nir_cle_obligatoire)
        match = match_usager(session, keys, identity)
        if not is_attached(session, owner, match.usager):
            match = None
            raise MatchError(f"usager non rattaché à l'organisation {owner.code}")
    except CellError as exc:
        found.append(RowError(row.position, exc.reason, exc.column))
    except MatchError as exc:
        found.append(RowError(row.position, str(exc)))
    reported: set[str | None] = set()
    try:
        data = feed_format.data(row.values)
    except CellErrors as exc:
        found.extend(RowError(row.position, error.reason, error.column) for error in exc.errors)
        reported = {error.column for error in exc.errors}
        # The other cells are still checked against the contract, so that one pass shows all.
        data = exc.data
    # What the file means, not how it is typed: « Absent » is ABSENT.
    canonical_codes(feed_format.enregistrement, data)
    numero = match.usager.numero_france_travail if match is not None else _ANY_NUMERO
    for path, reason in record_problems(feed_format.enregistrement, {**data, "numeroFranceTravail": numero}):
        column = feed_format.column_of(path)
        if column is not None and column in reported:
            continue  # already said (a value that could not be read is also "missing")
        found.append(RowError(row.position, reason if column else f"champ {path} : {reason}", column))
    if found or match is None:
        errors.extend(sorted(found, key=_column_order(feed_format)))
        return
    data["numeroFranceTravail"] = match.usager.numero_france_travail
    key = tuple(repr(data.get(name)) for name in key_fields)
    first = seen.setdefault(key, row.position)
    if first != row.position:
        errors.append(RowError(row.position, f"doublon de la ligne {first} (même usager et même clé)"))
        return
    prepared.append((row.position, {"type": feed_format.enregistrement, "data": data}, match))


def _domain_error(feed_format: FeedFormat, position: int, message: str) -> RowError:
    """A domain rule's refusal, naming the CSV column when it names a field that one fills."""
    named = _FIELD_NAMED.search(message)
    if named is not None:
        field_name = named.group(1)
        for column, spec in feed_format.colonnes.items():
            if spec.champ == field_name or spec.champ.endswith(f".{field_name}"):
                return RowError(position, message.replace(named.group(0), "cette colonne"), column)
    return RowError(position, message)


def _column_order(feed_format: FeedFormat) -> Callable[[RowError], int]:
    """A row's errors in the order of the format's columns, the row's own problems first."""
    order = {name: index for index, name in enumerate((*feed_format.identite.values(), *feed_format.colonnes))}
    return lambda error: order.get(error.column, -1) if error.column else -1


def _audit(
    session: Session,
    audit: AuditRecorder,
    match: Match,
    *,
    organisation: str,
    origin: str,
    operation: str,
    run_id: str,
    position: int,
    outcome: str,
    now: datetime,
    actor: str,
) -> None:
    draft = AuditDraft(
        channel=CHANNEL,
        operation=operation,
        organisation=organisation,
        agent_identifiant=actor,
        usager_id=match.usager.id,
        usager_nir_index=match.usager.nir_index,
        data_origin=origin[:128],
        details={"ligne": position, "regle": match.rule, "resultat": outcome, "execution": run_id},
    )
    audit.record(session, draft, request_id=f"{run_id}:{position}", http_status=200, occurred_at=now)
