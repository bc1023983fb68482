"""The delivery worker: takes due outbox messages and delivers them, safely from several processes.

Claiming is a short transaction: due messages are selected ``FOR UPDATE SKIP LOCKED`` (so two
workers on PostgreSQL never pick the same rows), and each is taken by a compare-and-set on its
``attempts`` counter, which also pushes ``next_attempt_at`` out by the lease. The HTTP call
happens outside any transaction. Its outcome is written only if the message still carries the
claimed attempt number: a worker that outlived its lease (or a message replayed meanwhile)
writes nothing, and whoever holds the message now decides. A worker that dies mid-delivery
loses nothing: the lease expires and another worker (or the restarted one) takes the message.
The editor may then see an event twice, and drops it by its ``Relais-Evenement-Id``.

After a failure the message is retried with exponential backoff and jitter, never sooner than
a ``Retry-After`` asks; after ``max_attempts`` it is dead (kept, visible, replayable). A
connector that fails ``connector_pause_after_failures`` times in a row is paused: its messages
wait, none is lost, its organisation's RGC is notified through the outbox, and the pause is
audited through the ``AuditRecorder`` the caller hands the worker.

Notifications for people (recipients ``agent:<id>``, ``rgc:<code>``, ``rssi:<code>``,
``cssi``) go to the organisation's connector marked ``notifications`` (a hub-level one for the
CSSI), an e-mail one first: it is sent to the addresses of the people holding that role now,
worded in French (``notices``). Before any channel is tried they are filed in the console
inbox of each person they reach; so without a channel, or an address, there is nothing left
to do: the message is marked ``skipped`` with the reason in ``last_error``, never left pending.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, or_, select

from adapters.outbound import notices, registry
from adapters.outbound.deliveries import WAITING
from adapters.outbound.models import (
    ACTIVE,
    EMAIL,
    FORMAT_V1,
    PAUSED,
    RECIPIENT_PREFIX,
    WEBHOOK,
    Connector,
    DeliveryAttempt,
)
from adapters.outbound.port import Delivery, Outcome, Sender, Target
from habilitations.models import ACTIF, CSSI, RGC_SUPPLEANT, RGC_TITULAIRE, RSSI, Agent, Designation
from habilitations.notifications import is_for_people
from relais.core.auditing import AuditDraft, AuditRecorder
from relais.core.config import Settings
from relais.core.db import Database
from relais.core.keys import KeySet
from relais.core.outbox import DEAD, DELIVERED, FAILED, SKIPPED, OutboxMessage, enqueue
from relais.core.tables import Organisation

log = structlog.get_logger("relais.connectors")

TOPIC_PAUSED = "connecteurs.connecteur.suspendu"
NO_CHANNEL = "aucun canal de notification configuré pour ce destinataire"
NO_ADDRESS = "aucune adresse de courriel connue pour ce destinataire"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    message_id: str
    attempt: int


@dataclass(frozen=True)
class Prepared:
    connector: Connector | None
    target: Target | None
    delivery: Delivery | None
    # Why nothing can be sent now (no channel, paused): the claim is given back.
    hold: str | None = None


class Worker:
    def __init__(
        self,
        database: Database,
        keys: KeySet,
        settings: Settings,
        sender: Sender,
        *,
        audit: AuditRecorder,
        mailer: Sender | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.keys = keys
        self.settings = settings
        # Writes the audit event of an automatic pause, in the pause's own transaction.
        self.audit = audit
        # By connector kind: webhooks, and e-mail for people's notifications when configured.
        self.senders: dict[str, Sender] = {WEBHOOK: sender}
        if mailer is not None:
            self.senders[EMAIL] = mailer
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not a secret)

    # The loop -----------------------------------------------------------------------------

    def run_once(self) -> tuple[int, int]:
        """Claim one batch of due messages and deliver them: (claimed, sent)."""
        claims = self.claim()
        sent = sum(1 for claim in claims if self.deliver(claim) is not None)
        return len(claims), sent

    def run_until_idle(self, max_batches: int = 1000) -> int:
        """Deliver until nothing is due now (tests, ``relais connecteurs worker --once``): how many sent."""
        total = 0
        for _ in range(max_batches):
            claimed, sent = self.run_once()
            total += sent
            if claimed == 0:
                break
        return total

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                claimed, _ = self.run_once()
            except Exception as exc:  # the loop outlives a database hiccup
                log.error("connector_worker_error", error=type(exc).__name__)
                claimed = 0
            if claimed == 0:
                stop.wait(self.settings.connector_poll_seconds)

    # Claiming -------------------------------------------------------------------------------

    def claim(self) -> list[Claim]:
        now = self.clock()
        lease_end = now + timedelta(seconds=self.settings.connector_lease_seconds)
        claims: list[Claim] = []
        try:
            with self.database.session() as session:
                paused = [
                    f"{RECIPIENT_PREFIX}{name}"
                    for name in session.exec(select(Connector.name).where(Connector.state == PAUSED))
                ]
                query = (
                    select(OutboxMessage.id, OutboxMessage.attempts)
                    .where(col(OutboxMessage.status).in_(WAITING), OutboxMessage.next_attempt_at <= now)
                    .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.created_at))
                    .limit(self.settings.connector_batch_size)
                    .with_for_update(skip_locked=True)
                )
                if paused:
                    query = query.where(col(OutboxMessage.recipient).not_in(paused))
                for message_id, attempts in session.exec(query).all():
                    taken = session.execute(
                        update(OutboxMessage)
                        .where(
                            col(OutboxMessage.id) == message_id,
                            col(OutboxMessage.attempts) == attempts,
                            col(OutboxMessage.status).in_(WAITING),
                        )
                        .values(attempts=attempts + 1, next_attempt_at=lease_end)
                    )
                    if taken.rowcount == 1:  # type: ignore[attr-defined]
                        claims.append(Claim(message_id, attempts + 1))
                session.commit()
        except OperationalError as exc:
            # Another process holds the lock (SQLite): nothing taken, try again next round.
            log.warning("connector_claim_busy", error=type(exc).__name__)
            return []
        return claims

    # Delivering -----------------------------------------------------------------------------

    def deliver(self, claim: Claim) -> Outcome | None:
        with self.database.session() as session:
            message = session.get(OutboxMessage, claim.message_id)
            if message is None:
                return None
            for_people = is_for_people(message.recipient)
            if for_people:
                # In the people's console inbox first, whatever becomes of the e-mail.
                notices.file(session, message, self.clock())
                session.commit()
            prepared = self._prepare(session, message)
        if for_people and prepared.hold in (NO_CHANNEL, NO_ADDRESS):
            self._skip(claim, prepared.hold or NO_CHANNEL)
            return None
        if prepared.hold is not None or prepared.target is None or prepared.delivery is None:
            self._give_back(claim, prepared.hold or NO_CHANNEL)
            return None
        assert prepared.connector is not None and prepared.connector.id is not None
        outcome = self.senders[prepared.connector.kind].send(prepared.target, prepared.delivery)
        self._record(claim, prepared.connector.id, outcome)
        return outcome

    def _prepare(self, session: Session, message: OutboxMessage) -> Prepared:
        connector = self._connector_for(session, message.recipient)
        if connector is None:
            return Prepared(None, None, None, hold=NO_CHANNEL)
        if connector.state != ACTIVE:
            return Prepared(connector, None, None, hold=f"connecteur {connector.name} suspendu")
        if connector.kind not in self.senders:
            return Prepared(connector, None, None, hold=f"pas d'envoi {connector.kind} dans ce processus")
        now = self.clock()
        recipients: tuple[str, ...] = ()
        if connector.kind == EMAIL:
            recipients = addresses_for(session, message.recipient, now)
            if not recipients:
                return Prepared(connector, None, None, hold=NO_ADDRESS)
        target = Target(
            connector=connector.name,
            url=connector.url,
            keys=registry.signing_secrets(session, self.keys, connector, now),
            timeout_seconds=connector.timeout_seconds or self.settings.connector_timeout_seconds,
            recipients=recipients,
        )
        session.expunge(connector)
        delivery = delivery_of(session, message)
        if connector.kind == EMAIL:
            wording = notices.word(session, message)
            delivery = replace(
                delivery, subject=wording.subject, text=notices.email_text(wording, self.settings.public_url)
            )
        return Prepared(connector, target, delivery)

    def _connector_for(self, session: Session, recipient: str) -> Connector | None:
        if recipient.startswith(RECIPIENT_PREFIX):
            return registry.by_name(session, recipient.removeprefix(RECIPIENT_PREFIX))
        organisation_id = _organisation_of_recipient(session, recipient)
        if organisation_id is _UNKNOWN:
            return None
        query = select(Connector).where(col(Connector.notifications).is_(True))
        if organisation_id is None:
            query = query.where(col(Connector.organisation_id).is_(None))
        else:
            query = query.where(Connector.organisation_id == organisation_id)
        channels = session.exec(query.order_by(col(Connector.id))).all()
        # An e-mail channel, when there is one, reaches people even while the editor is down.
        return next((c for c in channels if c.kind == EMAIL), channels[0] if channels else None)

    def _give_back(self, claim: Claim, reason: str) -> None:
        """Nothing was sent: undo the claim's attempt and look again later."""
        later = self.clock() + timedelta(seconds=max(self.settings.connector_backoff_base_seconds, 60.0))
        with self.database.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == claim.message_id, col(OutboxMessage.attempts) == claim.attempt)
                .values(attempts=claim.attempt - 1, next_attempt_at=later, last_error=reason[:1000])
            )
            session.commit()

    def _skip(self, claim: Claim, reason: str) -> None:
        """A people's notification with no way to send it: done (the inbox has it), not pending forever."""
        with self.database.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == claim.message_id, col(OutboxMessage.attempts) == claim.attempt)
                .values(status=SKIPPED, attempts=claim.attempt - 1, last_error=reason[:1000])
            )
            session.commit()

    def _record(self, claim: Claim, connector_id: int, outcome: Outcome) -> None:
        now = self.clock()
        with self.database.session() as session:
            # Connector first, then message: the order ``registry.resume`` takes them in.
            connector = session.exec(
                select(Connector)
                .where(Connector.id == connector_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            message = session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.id == claim.message_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            if message is None or message.attempts != claim.attempt or message.status not in WAITING:
                # The lease was lost (or the message replayed): its current holder decides.
                log.info("connector_stale_outcome", message_id=claim.message_id)
                session.rollback()
                return
            result = self._apply(session, message, connector, outcome, now)
            session.add(
                DeliveryAttempt(
                    message_id=message.id,
                    connector_id=connector.id,
                    attempt=claim.attempt,
                    attempted_at=now,
                    outcome=result,
                    http_status=outcome.http_status,
                    error=outcome.error[:255] if outcome.error else None,
                    duration_ms=outcome.duration_ms,
                )
            )
            session.commit()
        log.info(
            "connector_delivery",
            connector=connector.name,
            message_id=claim.message_id,
            attempt=claim.attempt,
            outcome=result,
            http_status=outcome.http_status,
        )

    def _apply(
        self, session: Session, message: OutboxMessage, connector: Connector, outcome: Outcome, now: datetime
    ) -> str:
        if outcome.delivered:
            message.status = DELIVERED
            message.delivered_at = now
            message.last_error = None
            connector.consecutive_failures = 0
            session.add_all([message, connector])
            return DELIVERED
        message.last_error = outcome.error
        max_attempts = connector.max_attempts or self.settings.connector_max_attempts
        if message.attempts >= max_attempts:
            message.status = DEAD
        else:
            message.status = FAILED
            message.next_attempt_at = now + timedelta(seconds=self.backoff(message.attempts, outcome.retry_after))
        connector.consecutive_failures += 1
        if connector.state == ACTIVE and connector.consecutive_failures >= self.settings.connector_pause_after_failures:
            self._pause(session, connector, now)
        session.add_all([message, connector])
        return message.status

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: exponential, half of it jittered, at least Retry-After."""
        settings = self.settings
        ceiling = min(
            settings.connector_backoff_max_seconds, settings.connector_backoff_base_seconds * 2 ** min(attempt - 1, 30)
        )
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, settings.connector_retry_after_max_seconds))
        return delay

    def _pause(self, session: Session, connector: Connector, now: datetime) -> None:
        reason = f"{connector.consecutive_failures} échecs consécutifs"
        registry.pause(session, connector, reason, now)
        code = registry.organisation_code(session, connector)
        enqueue(
            session,
            topic=TOPIC_PAUSED,
            recipient=f"rgc:{code}" if code else "cssi",
            payload={
                "connecteur": connector.name,
                "motif": reason,
                "dateSuspension": now.isoformat(),
                "action": "relais connecteurs resume, ou POST /relais/connecteurs/v1/connecteurs/{nom}/reprendre",
            },
            idempotency_key=f"{TOPIC_PAUSED}:{connector.name}:{now.isoformat()}",
            now=now,
            organisation_id=connector.organisation_id,
        )
        self.audit.record(
            session,
            AuditDraft(
                channel="adapter",
                operation="connecteurs.suspension_automatique",
                organisation=code,
                target=connector.name,
                reason="echecs_consecutifs",
            ),
            request_id=uuid.uuid4().hex,
            http_status=200,
            occurred_at=now,
        )
        log.warning("connector_paused", connector=connector.name, failures=connector.consecutive_failures)


def delivery_of(session: Session, message: OutboxMessage) -> Delivery:
    """What is sent: an event's own envelope, or a notification wrapped in the same shape."""
    payload: dict[str, Any] = dict(message.payload)
    if message.recipient.startswith(RECIPIENT_PREFIX) and "id" in payload:
        return Delivery(event_id=str(payload["id"]), event_type=message.topic, document=payload)
    organisation = session.get(Organisation, message.organisation_id) if message.organisation_id else None
    document = {
        "id": message.id,
        "type": message.topic,
        "format": FORMAT_V1,
        "date": message.created_at.astimezone(UTC).isoformat(),
        "organisation": organisation.code if organisation is not None else None,
        "destinataire": message.recipient,
        "donnees": payload,
    }
    return Delivery(event_id=message.id, event_type=message.topic, document=document)


_UNKNOWN: Any = object()


def _organisation_of_recipient(session: Session, recipient: str) -> Any:
    """The organisation id a notification is for; None for the hub (CSSI); _UNKNOWN otherwise."""
    kind, _, rest = recipient.partition(":")
    if kind == "cssi":
        return None
    if kind == "agent" and rest.isdigit():
        agent = session.get(Agent, int(rest))
        return agent.organisation_id if agent is not None else _UNKNOWN
    if kind in ("rgc", "rssi") and rest:
        organisation = session.exec(select(Organisation).where(Organisation.code == rest)).first()
        return organisation.id if organisation is not None else _UNKNOWN
    return _UNKNOWN


_ROLES = {"rgc": (RGC_TITULAIRE, RGC_SUPPLEANT), "rssi": (RSSI,), "cssi": (CSSI,)}


def addresses_for(session: Session, recipient: str, now: datetime) -> tuple[str, ...]:
    """The e-mail addresses of the active people a notification is for, re-read now."""
    kind, _, rest = recipient.partition(":")
    if kind == "agent":
        agent = session.get(Agent, int(rest)) if rest.isdigit() else None
        return (agent.email,) if agent is not None and agent.email and agent.etat == ACTIF else ()
    roles = _ROLES.get(kind)
    if roles is None:
        return ()
    query = (
        select(Agent.email)
        .join(Designation, col(Designation.agent_id) == col(Agent.id))
        .where(
            col(Designation.role).in_(roles),
            Designation.debut <= now,
            or_(col(Designation.fin).is_(None), col(Designation.fin) > now),
            Agent.etat == ACTIF,
            col(Agent.email).is_not(None),
        )
    )
    if kind != "cssi":
        organisation = session.exec(select(Organisation).where(Organisation.code == rest)).first()
        if organisation is None:
            return ()
        query = query.where(Designation.organisation_id == organisation.id)
    return tuple(sorted({email for email in session.exec(query) if email}))
