"""Detection rules evaluated on the audit journal as events arrive, opening incidents.

Design: requests never run a rule. They only append their event, as before; a detector then
reads the journal after a watermark (the highest event id already evaluated, one locked row),
evaluates every rule on the new events, opens or extends incidents and moves the watermark,
all in one transaction. It runs every ``audit_detection_interval_seconds`` in the app (see
``api.jobs``) and on demand with ``relais audit detect``; both take the same row lock,
so two runs never evaluate the same events, and a run that fails changes nothing (the next
one starts from the same watermark). Each event is evaluated exactly once; a rule firing
again on the same subject adds evidence to its open incident (``audit.incidents``).

Event ids are assigned at insert, so on PostgreSQL an event may become visible after one with
a higher id. A run therefore reads the highest id first, waits ``audit_detection_lag_seconds``
and evaluates only up to that id: by then every transaction that had inserted an id up to it
has committed (an event is the last write of its transaction). This does not depend on the
events' clocks, so an event stamped in the future cannot stall the detector.

Window rules look back in the journal from the new events (per subject, through the indexes
on (agent, time), (client, time)), so a burst spread over two runs is still seen whole.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select

from audit.incident_models import DetectorState
from audit.incidents import open_or_extend, remind_overdue
from audit.journal import append_event
from audit.models import AuditEvent
from relais.core.auditing import AuditDraft
from relais.core.config import Settings
from relais.core.db import Database

log = structlog.get_logger("relais.detection")

BULK_READS = "lectures_massives"
REPEATED_DENIALS = "refus_repetes"
PERIMETER = "hors_perimetre"
OFF_HOURS = "lectures_hors_horaires"
SELF_GRANT = "auto_habilitation"
BREAK_GLASS = "action_exceptionnelle"
RARE_SCOPE = "scope_inhabituel"
RULES = (BULK_READS, REPEATED_DENIALS, PERIMETER, OFF_HOURS, SELF_GRANT, BREAK_GLASS, RARE_SCOPE)
# Calls that read an usager's data on behalf of an agent.
READ_CHANNELS = ("partner-api", "adapter")
MAX_EVIDENCE = 500
CHANNEL = "detection"


@dataclass
class Alert:
    rule: str
    subject: str
    organisation: str | None
    summary: str
    details: dict[str, Any]
    evidence: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DetectionReport:
    evaluated: int
    watermark: int
    alerts: int
    opened: list[str]


# The rules read events as rows with the columns' names (SQLAlchemy's ``Row``), not as ORM
# objects: building thousands of those per run was most of its CPU (a window's history is read
# again for each batch). Nothing here writes to an event.
_EVENT_COLUMNS = tuple(AuditEvent.__table__.c)  # type: ignore[attr-defined]


# Subjects ---------------------------------------------------------------------------------


def _agent_subject(event: AuditEvent) -> tuple[str, ColumnElement[bool]] | None:
    """The acting agent: its record when known, else what the caller's headers said."""
    if event.agent_id is not None:
        return f"agent:{event.agent_id}", col(AuditEvent.agent_id) == event.agent_id
    if event.agent_identifiant:
        subject = f"agent:{event.organisation or '-'}/{event.client_id or '-'}/{event.agent_identifiant}"
        condition = and_(
            col(AuditEvent.agent_identifiant) == event.agent_identifiant,
            _equal_or_null(col(AuditEvent.client_id), event.client_id),
            _equal_or_null(col(AuditEvent.organisation), event.organisation),
        )
        return subject, condition
    return None


def _caller_subject(event: AuditEvent) -> tuple[str, ColumnElement[bool]]:
    agent = _agent_subject(event)
    if agent is not None:
        return agent
    if event.client_id:
        return f"client:{event.client_id}", col(AuditEvent.client_id) == event.client_id
    return "appelant:inconnu", and_(col(AuditEvent.client_id).is_(None), col(AuditEvent.agent_identifiant).is_(None))


def _matches_code(reason: str | None, codes: set[str]) -> bool:
    """A reason is a code, possibly prefixed by its layer (``lifecycle:separation_des_roles``)."""
    return reason is not None and (reason in codes or reason.rpartition(":")[2] in codes)


def _equal_or_null(column: Any, value: str | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


# Sliding windows ----------------------------------------------------------------------------


def _window_hits(
    events: Sequence[AuditEvent],
    *,
    window: timedelta,
    threshold: int,
    new_from: int,
    key: Callable[[AuditEvent], str | None] | None = None,
) -> tuple[int, list[int]]:
    """(peak, evidence): the largest count in any window ending at a new event, and the ids of
    every window that reached ``threshold`` (distinct ``key`` values when given)."""
    queue: deque[AuditEvent] = deque()
    counts: Counter[str] = Counter()
    peak = 0
    evidence: dict[int, None] = {}
    for event in events:
        queue.append(event)
        if key is not None:
            counts[key(event) or ""] += 1
        while queue and event.occurred_at - queue[0].occurred_at > window:
            gone = queue.popleft()
            if key is not None:
                name = key(gone) or ""
                counts[name] -= 1
                if not counts[name]:
                    del counts[name]
        size = len(counts) if key is not None else len(queue)
        if (event.id or 0) > new_from:
            peak = max(peak, size)
            # Once the evidence is full, nothing more is added: the window is not walked again
            # (walking it for every new event made a busy subject's run quadratic).
            if size >= threshold and len(evidence) < MAX_EVIDENCE:
                for item in queue:
                    if item.id is not None:
                        evidence[item.id] = None
                        if len(evidence) >= MAX_EVIDENCE:
                            break
    return peak, list(evidence)


class Detector:
    """The rules, with their thresholds, applied to one batch of new events."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timezone = ZoneInfo(settings.audit_office_hours_timezone)

    def evaluate(self, session: Session, batch: Sequence[AuditEvent], watermark: int) -> list[Alert]:
        alerts: list[Alert] = []
        alerts += self._bulk_reads(session, batch, watermark)
        alerts += self._off_hours(session, batch, watermark)
        alerts += self._repeated_denials(session, batch, watermark)
        alerts += self._perimeter(session, batch, watermark)
        alerts += self._self_grants(batch)
        alerts += self._break_glass(batch)
        alerts += self._rare_scopes(session, batch)
        return alerts

    # Window rules -------------------------------------------------------------------------

    def _history(self, session: Session, where: list[ColumnElement[bool]]) -> Sequence[AuditEvent]:
        return session.execute(
            select(*_EVENT_COLUMNS).where(*where).order_by(col(AuditEvent.occurred_at), col(AuditEvent.id))
        ).all()  # type: ignore[return-value]

    def _most_in_range(self, session: Session, where: list[ColumnElement[bool]], distinct_usagers: bool) -> int:
        """What a window rule counts (events, or distinct usagers), over the subject's whole
        range: a bound for any window in it, counted by the database. Most subjects stay far
        below their threshold; reading their history row by row, at every run, for as long as
        the window reaches back, cost more CPU than serving their calls (one agent at 1,000
        reads a second re-read ten minutes of its events for each new second of them)."""
        counted = (
            func.count(func.distinct(func.coalesce(col(AuditEvent.usager_id), "")))
            if distinct_usagers
            else func.count()
        )
        return int(session.execute(select(counted).where(*where)).scalar_one())

    def _windowed(
        self,
        session: Session,
        batch: Sequence[AuditEvent],
        watermark: int,
        *,
        rule: str,
        selected: Callable[[AuditEvent], bool],
        subject_of: Callable[[AuditEvent], tuple[str, ColumnElement[bool]] | None],
        extra: list[ColumnElement[bool]],
        window_seconds: int,
        threshold: int,
        distinct_usagers: bool,
        also: Callable[[AuditEvent], bool] = lambda event: True,
        describe: Callable[[int, int], str],
    ) -> list[Alert]:
        subjects: dict[str, tuple[ColumnElement[bool], list[AuditEvent]]] = {}
        # A subject is worked out from these four fields only (``_agent_subject``,
        # ``_caller_subject``): once per caller, not once per event (building its SQL condition
        # was a fifth of a run's CPU on a bench's journal).
        known: dict[tuple[Any, ...], tuple[str, ColumnElement[bool]] | None] = {}
        for event in batch:
            if not selected(event):
                continue
            caller = (event.agent_id, event.agent_identifiant, event.organisation, event.client_id)
            if caller not in known:
                known[caller] = subject_of(event)
            found = known[caller]
            if found is None:
                continue
            subjects.setdefault(found[0], (found[1], []))[1].append(event)
        window = timedelta(seconds=window_seconds)
        alerts = []
        for subject, (condition, events) in subjects.items():
            start = min(event.occurred_at for event in events) - window
            end = max(event.occurred_at for event in events)
            where = [condition, *extra, col(AuditEvent.occurred_at) >= start, col(AuditEvent.occurred_at) <= end]
            if self._most_in_range(session, where, distinct_usagers) < threshold:
                # No window can hold more than the whole range: no alert, and no row to read.
                continue
            history = [event for event in self._history(session, where) if also(event)]
            peak, evidence = _window_hits(
                history,
                window=window,
                threshold=threshold,
                new_from=watermark,
                key=(lambda event: event.usager_id) if distinct_usagers else None,
            )
            if peak >= threshold:
                alerts.append(
                    Alert(
                        rule=rule,
                        subject=subject,
                        organisation=events[-1].organisation,
                        summary=describe(peak, window_seconds),
                        details={"pic": peak, "seuil": threshold, "fenetreSecondes": window_seconds},
                        evidence=evidence,
                    )
                )
        return alerts

    def _is_read(self, event: AuditEvent) -> bool:
        return event.decision == "allowed" and event.usager_id is not None and event.channel in READ_CHANNELS

    def _read_conditions(self) -> list[ColumnElement[bool]]:
        return [
            col(AuditEvent.decision) == "allowed",
            col(AuditEvent.usager_id).is_not(None),
            col(AuditEvent.channel).in_(READ_CHANNELS),
        ]

    def _bulk_reads(self, session: Session, batch: Sequence[AuditEvent], watermark: int) -> list[Alert]:
        settings = self.settings
        return self._windowed(
            session,
            batch,
            watermark,
            rule=BULK_READS,
            selected=self._is_read,
            subject_of=_agent_subject,
            extra=self._read_conditions(),
            window_seconds=settings.audit_bulk_read_window_seconds,
            threshold=settings.audit_bulk_read_usagers,
            distinct_usagers=True,
            describe=lambda peak, seconds: f"{peak} usagers distincts lus en {seconds} s par le même agent",
        )

    def is_off_hours(self, moment: datetime) -> bool:
        local = moment.astimezone(self.timezone)
        settings = self.settings
        if local.weekday() >= 5:
            return True
        return not settings.audit_office_hours_start <= local.hour < settings.audit_office_hours_end

    def _off_hours(self, session: Session, batch: Sequence[AuditEvent], watermark: int) -> list[Alert]:
        settings = self.settings
        return self._windowed(
            session,
            batch,
            watermark,
            rule=OFF_HOURS,
            selected=lambda event: self._is_read(event) and self.is_off_hours(event.occurred_at),
            subject_of=_agent_subject,
            extra=self._read_conditions(),
            also=lambda event: self.is_off_hours(event.occurred_at),
            window_seconds=settings.audit_off_hours_window_seconds,
            threshold=settings.audit_off_hours_usagers,
            distinct_usagers=True,
            describe=lambda peak, seconds: f"{peak} usagers distincts lus hors des heures ouvrées en {seconds} s",
        )

    def _repeated_denials(self, session: Session, batch: Sequence[AuditEvent], watermark: int) -> list[Alert]:
        settings = self.settings
        return self._windowed(
            session,
            batch,
            watermark,
            rule=REPEATED_DENIALS,
            selected=lambda event: event.decision == "denied",
            subject_of=_caller_subject,
            extra=[col(AuditEvent.decision) == "denied"],
            window_seconds=settings.audit_denials_window_seconds,
            threshold=settings.audit_denials_threshold,
            distinct_usagers=False,
            describe=lambda peak, seconds: f"{peak} appels refusés en {seconds} s pour le même appelant",
        )

    def _perimeter(self, session: Session, batch: Sequence[AuditEvent], watermark: int) -> list[Alert]:
        settings = self.settings
        reasons = list(settings.audit_perimeter_reasons)
        return self._windowed(
            session,
            batch,
            watermark,
            rule=PERIMETER,
            selected=lambda event: event.reason in reasons,
            subject_of=_caller_subject,
            extra=[col(AuditEvent.reason).in_(reasons)],
            window_seconds=settings.audit_perimeter_window_seconds,
            threshold=settings.audit_perimeter_threshold,
            distinct_usagers=False,
            describe=lambda peak, seconds: (
                f"{peak} tentatives d'accès à des usagers hors du périmètre de l'organisation en {seconds} s"
            ),
        )

    # One-event rules ------------------------------------------------------------------------

    def _self_grants(self, batch: Sequence[AuditEvent]) -> list[Alert]:
        reasons = set(self.settings.audit_self_grant_reasons)
        alerts = []
        for event in batch:
            if event.decision == "denied" and _matches_code(event.reason, reasons):
                subject = _caller_subject(event)[0]
                alerts.append(
                    Alert(
                        rule=SELF_GRANT,
                        subject=subject,
                        organisation=event.organisation,
                        summary="Tentative d'un RGC de s'attribuer (ou d'étendre) sa propre habilitation",
                        details={"operation": event.operation},
                        evidence=[event.id] if event.id is not None else [],
                    )
                )
        return alerts

    def _break_glass(self, batch: Sequence[AuditEvent]) -> list[Alert]:
        operations = set(self.settings.audit_break_glass_operations)
        alerts = []
        for event in batch:
            override = (event.details or {}).get("override") is True
            if event.decision == "allowed" and (event.operation in operations or override):
                alerts.append(
                    Alert(
                        rule=BREAK_GLASS,
                        # Every use is an incident of its own: each needs its post-mortem.
                        subject=f"evenement:{event.id}",
                        organisation=event.organisation,
                        summary=f"Action exceptionnelle ou de contournement utilisée : {event.operation}",
                        details={"operation": event.operation, "cible": event.target},
                        evidence=[event.id] if event.id is not None else [],
                    )
                )
        return alerts

    def _rare_scopes(self, session: Session, batch: Sequence[AuditEvent]) -> list[Alert]:
        settings = self.settings
        pairs: dict[tuple[str, str, str], list[AuditEvent]] = {}
        for event in batch:
            if event.decision != "allowed" or not event.client_id or event.channel != "partner-api":
                continue
            if event.scopes:
                items = [("scope", scope) for scope in event.scopes.split()]
            else:
                items = [("operation", event.operation)]
            for kind, item in items:
                pairs.setdefault((event.client_id, kind, item), []).append(event)
        rare: dict[str, list[tuple[str, str, int, int, list[AuditEvent]]]] = {}
        for (client_id, kind, item), events in pairs.items():
            first = min(event.occurred_at for event in events)
            base = [
                col(AuditEvent.client_id) == client_id,
                col(AuditEvent.decision) == "allowed",
                col(AuditEvent.channel) == "partner-api",
                col(AuditEvent.occurred_at) >= first - timedelta(days=settings.audit_rare_scope_baseline_days),
                col(AuditEvent.occurred_at) < first,
            ]
            total = int(session.exec(select(func.count()).select_from(AuditEvent).where(*base)).one())
            if total < settings.audit_rare_scope_min_calls:
                continue
            if kind == "scope":
                column = col(AuditEvent.scopes)
                matches = or_(
                    column == item, column.like(f"{item} %"), column.like(f"% {item}"), column.like(f"% {item} %")
                )
            else:
                matches = col(AuditEvent.operation) == item
            uses = int(session.exec(select(func.count()).select_from(AuditEvent).where(*base, matches)).one())
            if uses / total < settings.audit_rare_scope_ratio:
                rare.setdefault(client_id, []).append((kind, item, uses, total, events))
        alerts = []
        # One alert per client and set of unusual scopes: one call using two new scopes is one incident.
        for client_id, found in rare.items():
            names = sorted(f"{kind}:{item}" for kind, item, _, _, _ in found)
            evidence = sorted({event.id for *_, events in found for event in events if event.id is not None})
            organisation = found[0][4][-1].organisation
            described = ", ".join(f"{item} ({uses} sur {total} appels)" for _, item, uses, total, _ in found)
            alerts.append(
                Alert(
                    rule=RARE_SCOPE,
                    subject=f"client:{client_id}|{'+'.join(names)}",
                    organisation=organisation,
                    summary=f"Le client {client_id} utilise ce qu'il n'utilise presque jamais : {described}"[:500],
                    details={
                        "client": client_id,
                        "inhabituels": [
                            {"type": kind, "valeur": item, "utilisations": uses, "appels": total}
                            for kind, item, uses, total, _ in found
                        ],
                    },
                    evidence=evidence[:MAX_EVIDENCE],
                )
            )
        return alerts


# Running ------------------------------------------------------------------------------------

# On SQLite: the pause between two batches' transactions.
SQLITE_PAUSE_SECONDS = 0.02


def _state(session: Session) -> DetectorState:
    state = session.exec(select(DetectorState).where(DetectorState.id == 1).with_for_update()).first()
    if state is None:
        state = DetectorState(id=1, watermark=0)
        session.add(state)
        session.flush()
    return state


def detect_once(session: Session, settings: Settings, *, now: datetime, ceiling: int) -> DetectionReport:
    """Evaluate the next batch of events up to id ``ceiling`` in ``session`` (the caller commits)."""
    state = _state(session)
    watermark = state.watermark
    batch: Sequence[AuditEvent] = session.execute(
        select(*_EVENT_COLUMNS)
        .where(col(AuditEvent.id) > watermark, col(AuditEvent.id) <= ceiling)
        .order_by(col(AuditEvent.id))
        .limit(settings.audit_detection_batch)
    ).all()  # type: ignore[assignment]
    if not batch:
        return DetectionReport(0, watermark, 0, [])
    alerts = Detector(settings).evaluate(session, batch, watermark)
    opened = []
    for alert in alerts:
        result = open_or_extend(
            session,
            rule=alert.rule,
            subject=alert.subject,
            organisation=alert.organisation,
            summary=alert.summary,
            details=alert.details,
            evidence=alert.evidence,
            now=now,
            notification_hours=settings.audit_incident_notification_hours,
        )
        if result.created:
            opened.append(result.incident.id)
            draft = AuditDraft(
                channel=CHANNEL,
                operation="audit.incident.ouvrir",
                organisation=alert.organisation,
                target=f"incident:{result.incident.id}",
                details={"regle": alert.rule, "preuves": result.new_evidence},
            )
            append_event(session, draft, request_id=uuid.uuid4().hex, http_status=201, occurred_at=now)
    last = batch[-1].id or watermark
    state.watermark = last
    state.updated_at = now
    session.add(state)
    return DetectionReport(len(batch), last, len(alerts), opened)


def run_detection(
    database: Database,
    settings: Settings,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], object] = time.sleep,
) -> DetectionReport:
    """Evaluate every committed event not evaluated yet, batch after batch, each batch in its
    own transaction. ``now`` is read after the wait (incidents are dated when detected)."""
    with database.session() as session:
        ceiling = session.exec(select(func.max(AuditEvent.id))).one() or 0
    if settings.audit_detection_lag_seconds:
        sleep(settings.audit_detection_lag_seconds)
    moment = now()
    evaluated, alerts, opened = 0, 0, []
    watermark = 0
    while True:
        with database.transaction() as session:
            report = detect_once(session, settings, now=moment, ceiling=ceiling)
        evaluated += report.evaluated
        alerts += report.alerts
        opened += report.opened
        watermark = report.watermark
        if report.evaluated < settings.audit_detection_batch:
            break
        if database.dialect == "sqlite":
            # SQLite has one connection, held with the write lock by each transaction: the
            # calls queued meanwhile get it between two batches. (Smaller batches would hold
            # it less long each, but every batch reads its rules' time windows again: 500
            # events a batch cost five times the CPU of 5,000.)
            sleep(SQLITE_PAUSE_SECONDS)
    with database.transaction() as session:
        remind_overdue(session, now=moment)
    return DetectionReport(evaluated, watermark, alerts, opened)
