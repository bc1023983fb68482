"""One ``relais import`` run: records in, one transaction, a report out.

Each record is checked against the import schema (``adapters.inbound.import_format``), then
recorded: organisations and clients here, the parcours records by the parcours domain
(``parcours.records``), the habilitations records through ``habilitations.lifecycle``
(``relais.importer.habilitations``). The first bad record rejects the whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from adapters.inbound.import_format import DatasetError, check_record, parse_lines
from adapters.outbound import events as connector_events
from habilitations.clients import ClientRegistryError, upsert_client
from habilitations.lifecycle import LifecycleRefused
from parcours.alimentation import Outcome, appliquer
from parcours.ports import Refused
from parcours.records import RECORD_TYPES as PARCOURS_RECORDS
from parcours.records import ParcoursRecords
from relais.core.db import Database
from relais.core.keys import KeySet
from relais.core.tables import Organisation
from relais.importer.habilitations import (
    import_agent,
    import_designation,
    import_habilitation,
    import_subscription,
)
from relais.importer.report import ImportReport

# Called once per line read, so that a progress bar can advance.
ProgressCallback = Callable[[int], None]
# The report's counts of each parcours record type.
_PARCOURS_REPORT = {
    "usager": "usagers",
    "orientation": "orientations",
    "rendez-vous": "rendez_vous",
    "contrat-engagement": "contrats_engagement",
    "manquement": "manquements",
}


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def import_file(
    database: Database,
    keys: KeySet,
    path: Path,
    *,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import a JSON Lines file in one transaction; raise :class:`DatasetError` on the first bad line.

    ``now`` is the time the domain rules see (activities' creation and due dates...).
    """
    with path.open("rb") as handle:
        return _import(database, keys, parse_lines(handle), progress, now)


def import_records(
    database: Database,
    keys: KeySet,
    records: Iterable[Mapping[str, Any]],
    *,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import records already parsed (``relais demo``); record N is reported as line N."""
    return _import(database, keys, enumerate(records, start=1), progress, now)


def _import(
    database: Database,
    keys: KeySet,
    records: Iterable[tuple[int, Any]],
    progress: ProgressCallback | None,
    now: datetime | None,
) -> ImportReport:
    # What the import changes reaches the organisations' connectors, as through the API.
    connector_events.install()
    with database.transaction() as session:
        importer = _Importer(session, keys, now or datetime.now(UTC))
        for number, record in records:
            if record is not None:
                importer.import_record(number, record)
            if progress is not None:
                progress(1)
        return importer.report


class _Importer:
    def __init__(self, session: Session, keys: KeySet, now: datetime) -> None:
        self.session = session
        self.now = now
        self.report = ImportReport()
        self.parcours = ParcoursRecords(session, keys, now)
        # Natural keys of the non-parcours records seen in this file, with their line.
        self._seen: dict[tuple[str, str], int] = {}

    def import_record(self, line: int, record: Any) -> None:
        check_record(line, record)
        kind, data = record["type"], record["data"]
        try:
            self._dispatch(line, kind, data)
        except Refused as refused:
            # The domain rules' messages name fields, never values.
            raise DatasetError(line, refused.message) from None

    def _dispatch(self, line: int, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "organisation":
            self._note_key(line, kind, data["code"], f"organisation « {data['code']} » déjà définie")
            self.report.organisations.add(self._organisation(data))
        elif kind == "client":
            self._note_key(line, kind, data["client_id"], f"client « {data['client_id']} » déjà défini")
            self.report.clients.add(self._client(line, data))
        elif kind in PARCOURS_RECORDS:
            getattr(self.report, _PARCOURS_REPORT[kind]).add(self.parcours.apply(line, kind, data))
        else:
            self._habilitations_record(line, kind, data)

    def _habilitations_record(self, line: int, kind: str, data: Mapping[str, Any]) -> None:
        organisation_id = self.parcours.organisation_id(data["organisation"])
        try:
            if kind == "subscription":
                self._note_key(line, kind, f"{data['organisation']}/{data['api']}", "souscription déjà définie")
                outcome = import_subscription(self.session, organisation_id, data, self.now)
                self.report.souscriptions.add(outcome)
            elif kind == "agent":
                key = f"{data['organisation']}/{data.get('client_id', '')}/{data['identifiant']}"
                self._note_key(line, kind, key, "agent déjà défini")
                self.report.agents.add(import_agent(self.session, organisation_id, data, self.now))
            elif kind == "designation":
                key = f"{data['organisation']}/{data['agent']}/{data['role']}"
                self._note_key(line, kind, key, "désignation déjà définie")
                outcome = import_designation(self.session, organisation_id, data, self.now)
                self.report.designations.add(outcome)
            else:
                key = f"{data['organisation']}/{data.get('client_id', '')}/{data['agent']}/{data['api']}"
                self._note_key(line, kind, key, "habilitation déjà définie")
                outcome = import_habilitation(self.session, organisation_id, data, self.now)
                self.report.habilitations.add(outcome)
        except LifecycleRefused as refused:
            # Lifecycle messages name rules and fields, never values.
            raise DatasetError(line, refused.message) from None

    def _note_key(self, line: int, kind: str, key: str, message: str) -> None:
        first = self._seen.setdefault((kind, key), line)
        if first != line:
            raise DatasetError(line, f"{message} ligne {first}")

    # Organisations and clients ----------------------------------------------------------------

    def _organisation(self, data: Mapping[str, Any]) -> Outcome:
        wanted = {
            "type": data["type"],
            "libelle": data["libelle"],
            "territoire": list(data["territoire"]),
            "code_aurore": data.get("code_aurore"),
            "code_safir": data.get("code_safir"),
        }
        existing = self.session.exec(select(Organisation).where(Organisation.code == data["code"])).first()
        if existing is None:
            organisation = Organisation(code=data["code"], created_at=self.now, updated_at=self.now, **wanted)
            self.session.add(organisation)
            self.session.flush()
            return "created"
        outcome = appliquer(existing, wanted, now=self.now)
        if outcome == "updated":
            self.session.add(existing)
            self.session.flush()
        return outcome

    def _client(self, line: int, data: Mapping[str, Any]) -> Outcome:
        # Checked here first so that the message is the importer's, with its hint.
        self.parcours.organisation_id(data["organisation"])
        try:
            _, outcome = upsert_client(
                self.session,
                client_id=data["client_id"],
                organisation_code=data["organisation"],
                scopes=data["scopes"],
                secret=data["client_secret"],
                enabled=data.get("enabled", True),
                rate_limit_per_second=data.get("rate_limit_per_second"),
                national=data.get("national", False),
            )
        except ClientRegistryError as exc:
            raise DatasetError(line, str(exc)) from None
        return outcome
